"""`bad_words`: drops documents holding a word of the bundled list (LDNOOBW English, as C4 uses).

The match runs as one RE2 kernel of pyarrow.compute over the whole array. `keep_fraction` keeps a
deterministic share of the flagged documents, drawn from (seed, doc_id) so any batching gives the same.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pipelines.filters.base import BaseFilter, BatchContext, FilterResult
from pipelines.filters.rules import first_reason


@lru_cache(maxsize=1)
def bad_words_en() -> tuple[str, ...]:
    """The bundled English bad-word list (LDNOOBW, as used by C4), lower case."""
    text = resources.files("pipelines.filters").joinpath("data/badwords_en.txt").read_text(encoding="utf-8")
    return tuple(w.strip() for w in text.splitlines() if w.strip())


@lru_cache(maxsize=1)
def _bad_words_pattern() -> str:
    words = "|".join(re.escape(w) for w in bad_words_en())
    # a match must be flanked by non-word characters or the text's ends, as in C4
    return rf"(?:[^\pL\pN_]|^)(?:{words})(?:[^\pL\pN_]|$)"


def has_bad_words(text: pa.Array) -> np.ndarray:
    """bool per document: whether the lower-cased text holds a listed word or phrase as whole words."""
    lowered = pc.utf8_lower(text)
    found = pc.match_substring_regex(lowered, _bad_words_pattern())
    return found.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)


def keep_draws(doc_ids: pa.Array, seed: int) -> np.ndarray:
    """Uniform [0,1) per document from (seed, doc_id): the same document gets the same draw in any batch."""
    draws = np.empty(len(doc_ids), dtype=np.float64)
    for i, doc_id in enumerate(doc_ids.cast(pa.string()).to_pylist()):
        digest = hashlib.blake2b(f"{seed}\x1f{doc_id}".encode(), digest_size=8).digest()
        draws[i] = int.from_bytes(digest, "little") / 2.0**64
    return draws


class BadWordsFilter(BaseFilter):
    """Drops documents holding a word of the bundled list (LDNOOBW English, as C4); `keep_fraction` keeps some."""

    name: Literal["bad_words"] = "bad_words"
    keep_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int = 0

    signals = ("has_bad_words",)

    def apply(self, ctx: BatchContext) -> FilterResult:
        found = has_bad_words(ctx.text)
        if self.keep_fraction > 0 and found.any():
            found &= keep_draws(ctx.doc_ids(), self.seed) >= self.keep_fraction
        return FilterResult(first_reason(ctx.num_rows, [("bad_words", found)]), {"has_bad_words": found})
