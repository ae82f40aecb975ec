"""The shared counting kernel: word and line counts for every document of a batch.

All counts are in code points (Python `len` of a `str`), so ratios match filters written on Python strings.
Inputs are the outputs of `pipelines.filters.words` (code points, word token spans); each document is
split into words once and every filter family reads the same counts (`counts.TextCounts.stats`).
A family's own kernels live in its module (`gopher_repetition`, `c4_quality`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipelines.filters.chars import ALPHA, LINEBREAK, SPACE, SYMBOL, TERMINAL
from pipelines.filters.words import FNV_OFFSET, fnv, has

# Columns of the matrix returned by `word_line_stats`.
N_CHARS, N_WORDS, N_NONSYMBOL, NONSYMBOL_CHARS, N_ALPHA_WORDS, N_STOP_WORDS = 0, 1, 2, 3, 4, 5
N_HASH, N_ELLIPSIS, N_LINES, N_BULLET_LINES, N_ELLIPSIS_LINES = 6, 7, 8, 9, 10
FW_LINES, FW_PUNCT_LINES, FW_SHORT_LINES, FW_DUP_LINE_CHARS, N_NEWLINES = 11, 12, 13, 14, 15
N_STAT_COLUMNS = 16


@njit(cache=True)
def duplicates(hashes: np.ndarray, lengths: np.ndarray) -> tuple[int, int]:
    """(elements equal to an earlier one, their total length), for segments given by hash and length."""
    n = hashes.shape[0]
    if n < 2:
        return 0, 0
    order = np.argsort(hashes, kind="mergesort")
    dup = 0
    dup_chars = 0
    for k in range(1, n):
        if hashes[order[k]] == hashes[order[k - 1]]:
            dup += 1
            dup_chars += lengths[order[k]]
    return dup, dup_chars


@njit(cache=True)
def segment_hash(cps, a, b) -> np.int64:
    # mix the length in so that a collision also needs equal lengths
    h = fnv(cps, a, b, FNV_OFFSET) ^ (np.uint64(b - a) * np.uint64(0x9E3779B97F4A7C15))
    return np.int64(h)


@njit(cache=True)
def _token_equals(cps, a, b, words, w_off, j) -> bool:
    s, e = w_off[j], w_off[j + 1]
    if e - s != b - a:
        return False
    for i in range(e - s):
        if words[s + i] != cps[a + i]:
            return False
    return True


@njit(cache=True)
def word_line_stats(cps, cp_off, ts, te, tok_off, fl, stop_words, stop_off, short_line_length) -> np.ndarray:
    """Per-document counts (float64 matrix, columns named by this module's constants).

    Words are the tokens of `split_words`; a symbol word has only SYMBOL characters; stop words match
    exactly (case-sensitive) and are counted once each. Lines for N_LINES/bullets/ellipses follow
    `str.splitlines`; FW_* lines follow `text.split("\\n")` without blank lines, as FineWeb's rules do.
    """
    n_docs = cp_off.shape[0] - 1
    out = np.zeros((n_docs, N_STAT_COLUMNS), dtype=np.float64)
    n_stop = stop_off.shape[0] - 1
    seen = np.zeros(max(n_stop, 1), dtype=np.bool_)
    for d in range(n_docs):
        a0, b0 = cp_off[d], cp_off[d + 1]
        out[d, N_CHARS] = b0 - a0
        seen[:] = False
        for k in range(tok_off[d], tok_off[d + 1]):
            a, b = ts[k], te[k]
            nonsym = False
            alpha = False
            for i in range(a, b):
                if not has(fl, cps[i], SYMBOL):
                    nonsym = True
                if has(fl, cps[i], ALPHA):
                    alpha = True
            if nonsym:
                out[d, N_NONSYMBOL] += 1
                out[d, NONSYMBOL_CHARS] += b - a
            if alpha:
                out[d, N_ALPHA_WORDS] += 1
            for j in range(n_stop):
                if not seen[j] and _token_equals(cps, a, b, stop_words, stop_off, j):
                    seen[j] = True
        out[d, N_WORDS] = tok_off[d + 1] - tok_off[d]
        out[d, N_STOP_WORDS] = seen[:n_stop].sum()
        # '#', non-overlapping '...', '…' and '\n' counts
        i = a0
        while i < b0:
            c = cps[i]
            if c == 35:
                out[d, N_HASH] += 1
            elif c == 0x2026:
                out[d, N_ELLIPSIS] += 1
            elif c == 10:
                out[d, N_NEWLINES] += 1
            elif c == 46 and i + 2 < b0 and cps[i + 1] == 46 and cps[i + 2] == 46:
                out[d, N_ELLIPSIS] += 1
                i += 3
                continue
            i += 1
        # str.splitlines lines
        i = a0
        while i < b0:
            j = i
            while j < b0 and not has(fl, cps[j], LINEBREAK):
                j += 1
            out[d, N_LINES] += 1
            s = i
            while s < j and has(fl, cps[s], SPACE):
                s += 1
            if s < j and (cps[s] == 0x2022 or cps[s] == 45):
                out[d, N_BULLET_LINES] += 1
            e = j
            while e > i and has(fl, cps[e - 1], SPACE):
                e -= 1
            if (e > i and cps[e - 1] == 0x2026) or (
                e - i >= 3 and cps[e - 1] == 46 and cps[e - 2] == 46 and cps[e - 3] == 46
            ):
                out[d, N_ELLIPSIS_LINES] += 1
            if j < b0 and cps[j] == 13 and j + 1 < b0 and cps[j + 1] == 10:
                j += 1
            i = j + 1
        # text.split("\n") lines that are not blank
        n_fw = 0
        hashes = np.empty(b0 - a0 + 1, dtype=np.int64)
        lengths = np.empty(b0 - a0 + 1, dtype=np.int64)
        i = a0
        while True:
            j = i
            while j < b0 and cps[j] != 10:
                j += 1
            blank = True
            for q in range(i, j):
                if not has(fl, cps[q], SPACE):
                    blank = False
                    break
            if not blank:
                hashes[n_fw] = segment_hash(cps, i, j)
                lengths[n_fw] = j - i
                n_fw += 1
                if has(fl, cps[j - 1], TERMINAL):
                    out[d, FW_PUNCT_LINES] += 1
                if j - i <= short_line_length:
                    out[d, FW_SHORT_LINES] += 1
            if j >= b0:
                break
            i = j + 1
        out[d, FW_LINES] = n_fw
        out[d, FW_DUP_LINE_CHARS] = duplicates(hashes[:n_fw], lengths[:n_fw])[1]
    return out
