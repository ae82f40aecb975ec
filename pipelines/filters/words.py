"""Word splitting kernels: UTF-8 to code points, and documents to word tokens, for whole Arrow batches.

The splitter follows the rules of spaCy's English tokenizer that matter for quality signals (the splitter
datatrove's filters use for English): whitespace separates chunks; punctuation and symbols are split off
the start and end of a chunk one mark at a time (runs of `.`, `-` and `'` stay together); `n't`, `'s`,
`'m`, `'d`, `'ll`, `'re` and `'ve` are split off words; hyphens between letters or digits, `/ : < > =`
before a letter, commas between letters and `.` between a lower and an upper case letter split a word;
abbreviations (`e.g.`, `U.S.`, `Mr.`) and chunks holding a URL or an address with `@` stay whole.
It does not reproduce spaCy's whole exception table; differences are rare and only move word counts.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipelines.filters.chars import ALNUM, ALPHA, DIGIT, LOWER, SPACE, SPLIT, UPPER

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)

# Abbreviations that keep their final period (checked case-sensitively, before the period is split off).
ABBREVIATIONS = (
    "Mr.", "Mrs.", "Ms.", "Dr.", "St.", "Jr.", "Sr.", "vs.", "Prof.", "Gen.", "Gov.", "Rev.", "Sen.",
    "Rep.", "Inc.", "Ltd.", "Co.", "Corp.", "Mt.", "Jan.", "Feb.", "Mar.", "Apr.", "Jun.", "Jul.",
    "Aug.", "Sep.", "Sept.", "Oct.", "Nov.", "Dec.", "Ph.D.", "Mass.", "Calif.", "Ala.", "Ariz.",
)  # fmt: skip


@njit(cache=True)
def decode_utf8(buf: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode a batch of UTF-8 strings (Arrow data buffer + int64 offsets) into int32 code points.

    Returns (code points, int64 offsets into them, one per document + 1). Invalid bytes decode as U+FFFD.
    """
    n_docs = offsets.shape[0] - 1
    total = offsets[n_docs] - offsets[0]
    out = np.empty(total, dtype=np.int32)
    cp_off = np.empty(n_docs + 1, dtype=np.int64)
    k = 0
    for d in range(n_docs):
        cp_off[d] = k
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            b = np.int32(buf[i])
            if b < 0x80:
                out[k] = b
                i += 1
            elif b >= 0xF0 and i + 3 < end:
                out[k] = (
                    ((b & 0x07) << 18)
                    | ((np.int32(buf[i + 1]) & 0x3F) << 12)
                    | ((np.int32(buf[i + 2]) & 0x3F) << 6)
                    | (np.int32(buf[i + 3]) & 0x3F)
                )
                i += 4
            elif b >= 0xE0 and i + 2 < end:
                out[k] = (
                    ((b & 0x0F) << 12) | ((np.int32(buf[i + 1]) & 0x3F) << 6) | (np.int32(buf[i + 2]) & 0x3F)
                )
                i += 3
            elif b >= 0xC0 and i + 1 < end:
                out[k] = ((b & 0x1F) << 6) | (np.int32(buf[i + 1]) & 0x3F)
                i += 2
            else:
                out[k] = 0xFFFD
                i += 1
            k += 1
    cp_off[n_docs] = k
    return out[:k], cp_off


@njit(cache=True, inline="always")
def has(fl: np.ndarray, cp: int, mask: int) -> bool:
    return cp < fl.shape[0] and (fl[cp] & mask) != 0


@njit(cache=True)
def fnv(cps: np.ndarray, a: int, b: int, h: np.uint64) -> np.uint64:
    """FNV-1a over code points cps[a:b], continuing from state `h` (so chained calls hash a concatenation)."""
    for i in range(a, b):
        h = (h ^ np.uint64(cps[i])) * FNV_PRIME
    return h


@njit(cache=True)
def _is_abbreviation(cps, a, b, abbr, abbr_off) -> bool:
    # letter-period pairs: "e.g.", "U.S.", "a.m.", and a single initial "J."
    if b - a >= 2 and (b - a) % 2 == 0:
        ok = True
        for i in range(a, b, 2):
            if cps[i + 1] != 46 or cps[i] > 127 or not (65 <= cps[i] <= 90 or 97 <= cps[i] <= 122):
                ok = False
                break
        if ok:
            return True
    for j in range(abbr_off.shape[0] - 1):
        s, e = abbr_off[j], abbr_off[j + 1]
        if e - s == b - a:
            same = True
            for i in range(e - s):
                if abbr[s + i] != cps[a + i]:
                    same = False
                    break
            if same:
                return True
    return False


@njit(cache=True)
def _contraction_start(cps, a, b, fl) -> int:
    """Start of a trailing contraction (n't, 's, 'm, 'd, 'll, 're, 've) in cps[a:b], or b if none."""
    n = b - a
    if (
        n == 6
        and (cps[a] | 32) == 99
        and (cps[a + 1] | 32) == 97
        and (cps[a + 2] | 32) == 110
        and (cps[a + 3] | 32) == 110
        and (cps[a + 4] | 32) == 111
        and (cps[a + 5] | 32) == 116
    ):
        return a + 3  # "cannot" -> "can", "not"
    if (
        n >= 4
        and (cps[b - 1] | 32) == 116
        and (cps[b - 2] == 39 or cps[b - 2] == 0x2019)
        and (cps[b - 3] | 32) == 110
    ):
        if has(fl, cps[b - 4], ALPHA):
            return b - 3
    if n >= 3 and (cps[b - 2] == 39 or cps[b - 2] == 0x2019) and has(fl, cps[b - 3], ALPHA):
        c = cps[b - 1] | 32
        if c == 115 or c == 109 or c == 100:  # s m d
            return b - 2
    if n >= 4 and (cps[b - 3] == 39 or cps[b - 3] == 0x2019) and has(fl, cps[b - 4], ALPHA):
        c1 = cps[b - 2] | 32
        c2 = cps[b - 1] | 32
        if (c1 == 108 and c2 == 108) or (c1 == 114 and c2 == 101) or (c1 == 118 and c2 == 101):  # ll re ve
            return b - 3
    return b


@njit(cache=True)
def _is_hyphen(c) -> bool:
    return c == 45 or c == 0x2013 or c == 0x2014 or c == 0x2012


@njit(cache=True)
def _split_core(cps, a, b, fl, ts, te, n) -> int:
    """Infix splitting of a chunk's core cps[a:b]; appends tokens to ts/te from index n, returns new n."""
    start = a
    i = a
    while i < b:
        c = cps[i]
        cut = 0  # length of the infix token at i, 0 = no split here
        prev_ok = i > start and has(fl, cps[i - 1], ALNUM)
        nxt = cps[i + 1] if i + 1 < b else -1
        if c == 0x2014 or c == 0x2026:  # em dash and the ellipsis character always split
            cut = 1
        elif c == 45 and i == a + 1 and i + 2 == b and 48 <= cps[i - 1] <= 57 and 48 <= nxt <= 57:
            cut = 1  # "1-2" splits, longer numbers with hyphens ("1732-1799", dates) stay whole
        elif _is_hyphen(c) and prev_ok:
            j = i
            while j < b and _is_hyphen(cps[j]):
                j += 1
            if j < b and has(fl, cps[j], ALPHA):
                cut = j - i
        elif c == 46 and i + 1 < b and cps[i + 1] == 46:
            j = i
            while j < b and cps[j] == 46:
                j += 1
            cut = j - i
        elif (
            (c == 47 or c == 58 or c == 60 or c == 62 or c == 61)
            and prev_ok
            and nxt >= 0
            and has(fl, nxt, ALPHA)
        ):
            cut = 1
        elif c == 44 and i > start and has(fl, cps[i - 1], ALPHA) and nxt >= 0 and has(fl, nxt, ALPHA):
            cut = 1
        elif c == 46 and i > start and has(fl, cps[i - 1], LOWER) and nxt >= 0 and has(fl, nxt, UPPER):
            cut = 1
        elif (c == 43 or c == 42 or c == 94) and i > start and 48 <= cps[i - 1] <= 57 and 48 <= nxt <= 57:
            cut = 1
        if cut:
            if i > start:
                ts[n] = start
                te[n] = i
                n += 1
            ts[n] = i
            te[n] = i + cut
            n += 1
            i += cut
            start = i
        else:
            i += 1
    if b > start:
        ts[n] = start
        te[n] = b
        n += 1
    return n


@njit(cache=True)
def _is_url_like(cps, a, b) -> bool:
    for i in range(a, b):
        c = cps[i]
        if c == 64 and i > a:  # '@' inside: an address
            return True
        if c == 58 and i + 2 < b and cps[i + 1] == 47 and cps[i + 2] == 47:  # '://'
            return True
    if b - a > 4 and cps[a] == 119 and cps[a + 1] == 119 and cps[a + 2] == 119 and cps[a + 3] == 46:
        return True
    return False


@njit(cache=True)
def _run_end(cps, i, step, limit) -> int:
    # "'" and '.' repeated form one token ("''", "...")
    c = cps[i]
    j = i
    if c == 46 or c == 39:
        while (j + step) != limit and cps[j + step] == c:
            j += step
    return j


@njit(cache=True)
def _period_splits(cps, a, b, fl) -> bool:
    # a final period is split after a digit, a lower-case letter, a mark, or two upper-case letters ("USA.")
    if b - a < 2:
        return False
    p = cps[b - 2]
    if has(fl, p, DIGIT) or has(fl, p, LOWER) or not has(fl, p, ALNUM):
        return True
    return b - a >= 3 and has(fl, p, UPPER) and has(fl, cps[b - 3], UPPER)


@njit(cache=True)
def _split_chunk(cps, a, b, fl, abbr, abbr_off, ts, te, n, stack) -> int:
    # prefixes
    while a < b:
        c = cps[a]
        if (
            (c == 46 and a + 1 < b and cps[a + 1] == 46)
            or has(fl, c, SPLIT)
            or c == 0xA7
            or c == 61
            or (c == 43 and not (a + 1 < b and 48 <= cps[a + 1] <= 57))
        ):
            j = _run_end(cps, a, 1, b)
            ts[n] = a
            te[n] = j + 1
            n += 1
            a = j + 1
        else:
            break
    # suffixes, collected right to left and emitted after the core
    ns = 0
    while b > a:
        c = cps[b - 1]
        if c == 46:
            if not (b - a >= 2 and cps[b - 2] == 46) and (
                not _period_splits(cps, a, b, fl) or _is_abbreviation(cps, a, b, abbr, abbr_off)
            ):
                break
        elif not (has(fl, c, SPLIT) or (c == 43 and b - a >= 2 and 48 <= cps[b - 2] <= 57)):
            break
        j = _run_end(cps, b - 1, -1, a - 1)
        stack[ns] = j
        stack[ns + 1] = b
        ns += 2
        b = j
    if b > a:
        c0 = _contraction_start(cps, a, b, fl)
        if _is_url_like(cps, a, c0):
            ts[n] = a
            te[n] = c0
            n += 1
        else:
            n = _split_core(cps, a, c0, fl, ts, te, n)
        if c0 < b:
            ts[n] = c0
            te[n] = b
            n += 1
    while ns > 0:
        ns -= 2
        ts[n] = stack[ns]
        te[n] = stack[ns + 1]
        n += 1
    return n


@njit(cache=True)
def split_words(
    cps: np.ndarray, cp_off: np.ndarray, fl: np.ndarray, abbr: np.ndarray, abbr_off: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split every document of a batch into word tokens (punctuation marks are tokens too).

    Returns (token starts, token ends, int64 per-document offsets into them); starts/ends index `cps`.
    Whitespace never appears in a token; a document of only whitespace has no tokens.
    """
    total = cps.shape[0]
    ts = np.empty(total, dtype=np.int64)
    te = np.empty(total, dtype=np.int64)
    stack = np.empty(2 * (total + 1), dtype=np.int64)
    tok_off = np.empty(cp_off.shape[0], dtype=np.int64)
    n = 0
    for d in range(cp_off.shape[0] - 1):
        tok_off[d] = n
        i = cp_off[d]
        end = cp_off[d + 1]
        while i < end:
            while i < end and has(fl, cps[i], SPACE):
                i += 1
            if i >= end:
                break
            j = i
            while j < end and not has(fl, cps[j], SPACE):
                j += 1
            n = _split_chunk(cps, i, j, fl, abbr, abbr_off, ts, te, n, stack)
            i = j
    tok_off[cp_off.shape[0] - 1] = n
    return ts[:n], te[:n], tok_off
