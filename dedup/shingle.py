"""Shingling: documents to sets of 64-bit shingle hashes, over whole Arrow string arrays (numba).

Normalization (applied to the UTF-8 bytes, on top of the curate stage's NFC/whitespace normalization):
  * ASCII letters are lower-cased; other bytes are kept as they are (non-ASCII text is compared verbatim);
  * a *word* is a maximal run of bytes that are neither ASCII whitespace nor ASCII punctuation
    (so "Hello, World!" gives the words "hello" and "world"); bytes >= 0x80 are word bytes.
Word mode (default): a shingle is `ngram` consecutive words. Char mode: a shingle is `ngram` consecutive
Unicode code points of the words joined by single spaces. A document with fewer than `ngram` tokens but at
least one gives one shingle of all its tokens; a document without any word gives no shingle (an empty set).

Hashes: a word is hashed with 64-bit FNV-1a over its normalized bytes; a shingle combines its tokens' values
in order and ends with the MurmurHash3 finalizer, so shingle hashes are well mixed 64-bit values. Both
depend only on the text and `ngram` (no seed): the MinHash permutations carry the seed.
"""

from __future__ import annotations

from typing import Literal

import numba as nb
import numpy as np
import pyarrow as pa

from dedup.arrow_buffers import utf8_buffers

ShingleMode = Literal["word", "char"]
MODES: dict[str, int] = {"word": 0, "char": 1}

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def _separator_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.bool_)
    for c in b" \t\n\r\x0b\x0c" + b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~":
        table[c] = True
    return table


SEPARATOR = _separator_table()


@nb.njit(inline="always")
def fmix64(k: np.uint64) -> np.uint64:
    """MurmurHash3's 64-bit finalizer: a bijection that mixes every input bit into every output bit."""
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    k ^= k >> np.uint64(33)
    return k


@nb.njit(inline="always")
def _tokens(data: np.ndarray, start: int, end: int, mode: int, sep: np.ndarray, out: np.ndarray) -> int:
    """Fill `out` with the token values of data[start:end]; return their count.

    Word mode: FNV-1a of each normalized word. Char mode: code points of the words joined by single spaces.
    `out` must hold at least end - start + 1 values.
    """
    n = 0
    in_word = False
    if mode == 0:
        h = _FNV_OFFSET
        for i in range(start, end):
            c = data[i]
            if sep[c]:
                if in_word:
                    out[n] = h
                    n += 1
                    in_word = False
            else:
                if not in_word:
                    h = _FNV_OFFSET
                    in_word = True
                if 65 <= c <= 90:
                    c += 32
                h = (h ^ np.uint64(c)) * _FNV_PRIME
        if in_word:
            out[n] = h
            n += 1
        return n
    i = start
    while i < end:
        c = data[i]
        if sep[c]:
            in_word = False
            i += 1
            continue
        if not in_word:
            if n > 0:
                out[n] = np.uint64(32)
                n += 1
            in_word = True
        if c < 0x80:
            cp = np.uint64(c + 32 if 65 <= c <= 90 else c)
            i += 1
        else:
            width = 2 if c < 0xE0 else (3 if c < 0xF0 else 4)
            cp = np.uint64(c & (0x3F >> (width - 1)))
            for j in range(1, width):
                if i + j < end:
                    cp = (cp << np.uint64(6)) | np.uint64(data[i + j] & 0x3F)
            i += width
        out[n] = cp
        n += 1
    return n


@nb.njit(inline="always")
def _shingle(tok: np.ndarray, i: int, width: int) -> np.uint64:
    """Order-sensitive 64-bit hash of tok[i:i+width]."""
    h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(width)
    for j in range(width):
        h = ((h << np.uint64(27)) | (h >> np.uint64(37))) ^ tok[i + j]
        h *= np.uint64(0x9FB21C651E98DF25)
    return fmix64(h)


@nb.njit(inline="always")
def doc_shingles(
    data: np.ndarray, start: int, end: int, ngram: int, mode: int, sep: np.ndarray, tok: np.ndarray,
    out: np.ndarray,
) -> int:
    """Write the shingle hashes of data[start:end] to `out` (in text order, repeats kept); return the count."""
    nt = _tokens(data, start, end, mode, sep, tok)
    if nt == 0:
        return 0
    if nt < ngram:
        out[0] = _shingle(tok, 0, nt)
        return 1
    for i in range(nt - ngram + 1):
        out[i] = _shingle(tok, i, ngram)
    return nt - ngram + 1


@nb.njit(parallel=True, nogil=True, cache=True)
def _count_shingles(data, offsets, ngram, mode, sep):  # type: ignore[no-untyped-def]
    n = offsets.shape[0] - 1
    counts = np.zeros(n, dtype=np.int64)
    for d in nb.prange(n):
        tok = np.empty(offsets[d + 1] - offsets[d] + 1, dtype=np.uint64)
        nt = _tokens(data, offsets[d], offsets[d + 1], mode, sep, tok)
        counts[d] = 0 if nt == 0 else max(nt - ngram + 1, 1)
    return counts


@nb.njit(parallel=True, nogil=True, cache=True)
def _fill_shingles(data, offsets, ngram, mode, sep, out_offsets, out):  # type: ignore[no-untyped-def]
    n = offsets.shape[0] - 1
    for d in nb.prange(n):
        tok = np.empty(offsets[d + 1] - offsets[d] + 1, dtype=np.uint64)
        doc_shingles(data, offsets[d], offsets[d + 1], ngram, mode, sep, tok, out[out_offsets[d] :])


def check_shingle_args(ngram: int, mode: str) -> int:
    """Validate shingling arguments; return the numeric mode. Raises ValueError naming the bad value."""
    if not isinstance(ngram, int | np.integer) or ngram < 1:
        raise ValueError(f"ngram must be a positive int, got {ngram!r}")
    if mode not in MODES:
        raise ValueError(f"shingle mode must be one of {sorted(MODES)}, got {mode!r}")
    return MODES[mode]


def shingle_hashes(
    texts: pa.Array | pa.ChunkedArray, *, ngram: int = 5, mode: ShingleMode = "word"
) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of every text: a flat uint64 array and int64 offsets (length n+1) into it.

    Document d's shingles are hashes[offsets[d]:offsets[d+1]], in text order with repeats kept (MinHash
    treats them as a set). Raises ValueError for a bad `ngram`/`mode`, a non-string array or null texts.
    """
    code = check_shingle_args(ngram, mode)
    data, offsets = utf8_buffers(texts)
    counts = _count_shingles(data, offsets, int(ngram), code, SEPARATOR)
    out_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out_offsets[1:])
    out = np.empty(int(out_offsets[-1]), dtype=np.uint64)
    _fill_shingles(data, offsets, int(ngram), code, SEPARATOR, out_offsets, out)
    return out, out_offsets


def shingle_strings(text: str, *, ngram: int = 5, mode: ShingleMode = "word") -> list[str]:
    """The shingles of one text as strings, under the same normalization (for anchors and tests; slow).

    Word shingles are the words joined by one space; char shingles are substrings of the normalized text.
    """
    check_shingle_args(ngram, mode)
    raw = text.encode("utf-8")
    words, cur = [], bytearray()
    for c in raw:
        if SEPARATOR[c]:
            if cur:
                words.append(bytes(cur).decode("utf-8", "replace"))
                cur = bytearray()
        else:
            cur.append(c + 32 if 65 <= c <= 90 else c)
    if cur:
        words.append(bytes(cur).decode("utf-8", "replace"))
    tokens: list[str] = words if mode == "word" else list(" ".join(words))
    if not tokens:
        return []
    joiner = " " if mode == "word" else ""
    if len(tokens) < ngram:
        return [joiner.join(tokens)]
    return [joiner.join(tokens[i : i + ngram]) for i in range(len(tokens) - ngram + 1)]
