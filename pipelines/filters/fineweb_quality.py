"""`fineweb_quality`: FineWeb's line rules (Penedo et al. 2024), on the shared word/line counts."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from pipelines.filters import stats as S
from pipelines.filters.base import BaseFilter, BatchContext, FilterResult
from pipelines.filters.counts import DEFAULT_SHORT_LINE
from pipelines.filters.rules import first_reason, ratio


def fineweb_fractions(st: np.ndarray) -> dict:
    """FineWeb's ratios from a `word_line_stats` matrix."""
    return {
        "line_punct_ratio": ratio(st[:, S.FW_PUNCT_LINES], st[:, S.FW_LINES]),
        "short_line_ratio": ratio(st[:, S.FW_SHORT_LINES], st[:, S.FW_LINES]),
        "char_dup_ratio": ratio(st[:, S.FW_DUP_LINE_CHARS], st[:, S.N_CHARS] - st[:, S.N_NEWLINES]),
        "newline_word_ratio": ratio(st[:, S.N_NEWLINES], st[:, S.N_WORDS]),
    }


def fineweb_reasons(
    st: np.ndarray, fr: dict, *, line_punct_thr: float, line_punct_exclude_zero: bool, short_line_thr: float,
    char_duplicates_ratio: float, new_line_ratio: float,
) -> np.ndarray:  # fmt: skip
    """FineWeb quality rules (datatrove's reason names); a document without a non-blank line is `empty`."""
    punct = fr["line_punct_ratio"]
    low_punct = punct < line_punct_thr
    if line_punct_exclude_zero:
        low_punct &= punct != 0
    checks = [
        ("empty", st[:, S.FW_LINES] == 0),
        ("line_punct_ratio", low_punct),
        ("short_line_ratio", fr["short_line_ratio"] > short_line_thr),
        ("char_dup_ratio", fr["char_dup_ratio"] > char_duplicates_ratio),
        ("list_ratio", fr["newline_word_ratio"] > new_line_ratio),
    ]
    return first_reason(len(st), checks)


class FineWebQualityFilter(BaseFilter):
    """FineWeb's line punctuation, short line, duplicated line character and list (newline per word) rules."""

    name: Literal["fineweb_quality"] = "fineweb_quality"
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = Field(default=DEFAULT_SHORT_LINE, ge=0)
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3

    signals = ("line_punct_ratio", "short_line_ratio", "char_dup_ratio", "newline_word_ratio")

    def apply(self, ctx: BatchContext) -> FilterResult:
        st = ctx.counts.stats(short_line=self.short_line_length)
        fr = fineweb_fractions(st)
        reasons = fineweb_reasons(st, fr, **self.model_dump(exclude={"name", "short_line_length"}))
        return FilterResult(reasons, fr)
