"""`length`: drops empty documents, too few words and too many characters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.filters import stats as S
from pipelines.filters.base import BaseFilter, BatchContext, FilterResult
from pipelines.filters.rules import first_reason


class LengthFilter(BaseFilter):
    """Drops empty documents (`empty`), too few words (`too_short`) and too many characters (`too_long`)."""

    name: Literal["length"] = "length"
    min_words: int = Field(default=5, ge=0)
    max_chars: int = Field(default=1_000_000, gt=0)

    signals = ()

    def apply(self, ctx: BatchContext) -> FilterResult:
        st = ctx.counts.stats()
        reasons = first_reason(ctx.num_rows, [
            ("empty", st[:, S.N_WORDS] == 0),
            ("too_short", st[:, S.N_NONSYMBOL] < self.min_words),
            ("too_long", st[:, S.N_CHARS] > self.max_chars),
        ])  # fmt: skip
        return FilterResult(reasons)
