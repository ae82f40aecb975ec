"""Configuration of normalization (`curate.normalize`) and of the ordered filter list (`curate.filters`).

Each item of `curate.filters` is `{name: ..., <params>}`; `name` selects a registered filter, whose model
(in `pipelines/filters/<name>.py`) validates the rest. Every threshold defaults to its published value
(Gopher: Rae et al. 2021, Table A1 and appendix A; C4: Raffel et al. 2020; FineWeb: Penedo et al. 2024).
A threshold set to null disables that one rule.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipelines.filters.bad_words import BadWordsFilter
from pipelines.filters.c4_quality import C4QualityFilter
from pipelines.filters.fineweb_quality import FineWebQualityFilter
from pipelines.filters.gopher_quality import GopherQualityFilter
from pipelines.filters.gopher_repetition import GopherRepetitionFilter
from pipelines.filters.language import LanguageFilter
from pipelines.filters.length import LengthFilter
from pipelines.filters.pii import PIIFilter
from pipelines.filters.registry import FilterSpec

__all__ = [
    "BadWordsFilter",
    "C4QualityFilter",
    "FilterSpec",
    "FineWebQualityFilter",
    "GopherQualityFilter",
    "GopherRepetitionFilter",
    "LanguageFilter",
    "LengthFilter",
    "NormalizeConfig",
    "PIIFilter",
]


class NormalizeConfig(BaseModel):
    """How raw text is normalized before any filter sees it (see `pipelines.filters.normalize`)."""

    model_config = ConfigDict(extra="forbid")

    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    strip_control: bool = True
    line_endings: bool = True
    collapse_whitespace: bool = True
