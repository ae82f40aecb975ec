"""`gopher_quality`: Gopher's quality rules (Rae et al. 2021, appendix A), on the shared word/line counts."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from pipelines.filters import stats as S
from pipelines.filters.base import BaseFilter, BatchContext, FilterResult
from pipelines.filters.counts import DEFAULT_STOP_WORDS
from pipelines.filters.rules import first_reason, ratio


def gopher_quality_reasons(
    st: np.ndarray, *, min_doc_words: int | None, max_doc_words: int | None, min_avg_word_length: float | None,
    max_avg_word_length: float | None, max_symbol_word_ratio: float | None, max_bullet_lines_ratio: float | None,
    max_ellipsis_lines_ratio: float | None, min_alpha_words_ratio: float | None, min_stop_words: int | None,
) -> np.ndarray:  # fmt: skip
    """Gopher quality rules on a `word_line_stats` matrix (reason codes as datatrove names them)."""
    words = st[:, S.N_NONSYMBOL]
    tokens = st[:, S.N_WORDS]
    avg = ratio(st[:, S.NONSYMBOL_CHARS], words)
    lines = st[:, S.N_LINES]
    checks = [
        ("gopher_short_doc", words < min_doc_words if min_doc_words else None),
        ("gopher_long_doc", words > max_doc_words if max_doc_words else None),
        ("gopher_below_avg_threshold", avg < min_avg_word_length if min_avg_word_length else None),
        ("gopher_above_avg_threshold", avg > max_avg_word_length if max_avg_word_length else None),
        ("gopher_too_many_hashes",
         ratio(st[:, S.N_HASH], tokens) > max_symbol_word_ratio if max_symbol_word_ratio else None),
        ("gopher_too_many_ellipsis",
         ratio(st[:, S.N_ELLIPSIS], tokens) > max_symbol_word_ratio if max_symbol_word_ratio else None),
        ("gopher_too_many_bullets",
         ratio(st[:, S.N_BULLET_LINES], lines) > max_bullet_lines_ratio if max_bullet_lines_ratio else None),
        ("gopher_too_many_end_ellipsis",
         ratio(st[:, S.N_ELLIPSIS_LINES], lines) > max_ellipsis_lines_ratio if max_ellipsis_lines_ratio else None),
        ("gopher_below_alpha_threshold",
         ratio(st[:, S.N_ALPHA_WORDS], tokens) < min_alpha_words_ratio if min_alpha_words_ratio else None),
        ("gopher_enough_stop_words", st[:, S.N_STOP_WORDS] < min_stop_words if min_stop_words else None),
    ]  # fmt: skip
    return first_reason(len(st), checks)


class GopherQualityFilter(BaseFilter):
    """Gopher's quality rules. Words are counted without symbol-only words; ratios are per word or per line."""

    name: Literal["gopher_quality"] = "gopher_quality"
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: list[str] = Field(default_factory=lambda: list(DEFAULT_STOP_WORDS))

    signals = ("n_stop_words", "hash_word_ratio", "ellipsis_word_ratio", "bullet_lines_ratio",
               "ellipsis_lines_ratio")  # fmt: skip

    def apply(self, ctx: BatchContext) -> FilterResult:
        st = ctx.counts.stats(stop_words=self.stop_words)
        reasons = gopher_quality_reasons(st, **self.model_dump(exclude={"name", "stop_words"}))
        return FilterResult(reasons, {
            "n_stop_words": st[:, S.N_STOP_WORDS],
            "hash_word_ratio": ratio(st[:, S.N_HASH], st[:, S.N_WORDS]),
            "ellipsis_word_ratio": ratio(st[:, S.N_ELLIPSIS], st[:, S.N_WORDS]),
            "bullet_lines_ratio": ratio(st[:, S.N_BULLET_LINES], st[:, S.N_LINES]),
            "ellipsis_lines_ratio": ratio(st[:, S.N_ELLIPSIS_LINES], st[:, S.N_LINES]),
        })  # fmt: skip
