"""Configuration of normalization and of the ordered filter list (`curate.filters`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class NormalizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    strip_control: bool = True
    line_endings: bool = True
    collapse_whitespace: bool = True


class LengthFilter(BaseModel):
    """Drops empty documents (`empty`), too few words (`too_short`) and too many characters (`too_long`)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["length"] = "length"
    min_words: int = Field(default=5, ge=0)
    max_chars: int = Field(default=1_000_000, gt=0)


FilterSpec = Annotated[LengthFilter, Field(discriminator="name")]
