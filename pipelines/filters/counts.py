"""`TextCounts`: one version of a batch's text decoded, split into words and counted once for every filter.

A filter that edits the text hands back the new text and the runner builds a new `TextCounts` for it, so
later filters count the edited text. Everything here is computed on first use and cached per version.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.filters import stats as S
from pipelines.filters.chars import char_flags, codepoints
from pipelines.filters.words import ABBREVIATIONS, decode_utf8, split_words

# Gopher's stop words and FineWeb's short-line length: the defaults of the counts every filter shares
DEFAULT_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
DEFAULT_SHORT_LINE = 30


@lru_cache(maxsize=1)
def abbreviations() -> tuple[np.ndarray, np.ndarray]:
    """`words.ABBREVIATIONS` as kernel arguments (code points, offsets)."""
    return codepoints(ABBREVIATIONS)


@lru_cache(maxsize=8)
def word_list(words: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A tuple of words as kernel arguments (code points, offsets), cached."""
    return codepoints(words)


class TextCounts:
    """Code points, word tokens and counts of one version of a batch's text, each computed on first use."""

    def __init__(self, text: pa.Array) -> None:
        self.text = text.cast(pa.large_string())
        n = len(self.text)
        offsets = np.frombuffer(self.text.buffers()[1], dtype=np.int64)[
            self.text.offset : self.text.offset + n + 1
        ]
        data = self.text.buffers()[2]
        buf = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
        self.fl = char_flags()
        self.cps, self.cp_off = decode_utf8(buf, np.ascontiguousarray(offsets))
        self._tokens: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._stats: dict[tuple, np.ndarray] = {}
        self._memo: dict[Hashable, Any] = {}

    @property
    def tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(token starts, token ends, per-document token offsets) of `words.split_words`."""
        if self._tokens is None:
            self._tokens = split_words(self.cps, self.cp_off, self.fl, *abbreviations())
        return self._tokens

    def stats(
        self, stop_words: Sequence[str] = DEFAULT_STOP_WORDS, short_line: int = DEFAULT_SHORT_LINE
    ) -> np.ndarray:
        """The `stats.word_line_stats` matrix for these stop words and short-line length."""
        key = (tuple(stop_words), short_line)
        if key not in self._stats:
            ts, te, to = self.tokens
            sw, sw_off = word_list(key[0])
            self._stats[key] = S.word_line_stats(
                self.cps, self.cp_off, ts, te, to, self.fl, sw, sw_off, short_line
            )
        return self._stats[key]

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`compute()` once per key for this version of the text (a filter family's own counts)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]
