"""Quality signal kernels: word, line, paragraph and n-gram counts for every document of a batch.

All counts are in code points (Python `len` of a `str`), so ratios match filters written on Python strings.
Inputs are the outputs of `pipelines.filters.words` (code points, word token spans); each document is
split into words once and every filter family reads the same counts.
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

# Columns of the matrix returned by `repetition_stats` (then one per top n-gram size, one per dup n-gram size).
N_PARAS, DUP_PARAS, DUP_PARA_CHARS, N_REP_LINES, DUP_LINES, DUP_LINE_CHARS = 0, 1, 2, 3, 4, 5
N_REP_FIXED = 6


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
def _segment_hash(cps, a, b) -> np.int64:
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
                hashes[n_fw] = _segment_hash(cps, i, j)
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


@njit(cache=True)
def _split_runs(cps, a, b, min_run, hashes, lengths) -> int:
    """Segments of cps[a:b] separated by runs of >= min_run '\\n' (as `re.split`); returns their count."""
    n = 0
    seg = a
    i = a
    while i < b:
        if cps[i] == 10:
            j = i
            while j < b and cps[j] == 10:
                j += 1
            if j - i >= min_run:
                hashes[n] = _segment_hash(cps, seg, i)
                lengths[n] = i - seg
                n += 1
                seg = j
            i = j
        else:
            i += 1
    hashes[n] = _segment_hash(cps, seg, b)
    lengths[n] = b - seg
    return n + 1


_BASE = np.uint64(0x100000001B3)


@njit(cache=True)
def _token_hashes(cps, ts, te, k0, k1) -> tuple[np.ndarray, np.ndarray]:
    """Polynomial hash of each token and BASE**len(token) (mod 2**64), so that the hash of a concatenation
    is hash(x) * BASE**len(y) + hash(y): n-gram hashes then cost O(n) multiply-adds, not O(characters)."""
    th = np.empty(k1 - k0, dtype=np.uint64)
    tp = np.empty(k1 - k0, dtype=np.uint64)
    for k in range(k0, k1):
        h = np.uint64(0)
        p = np.uint64(1)
        for i in range(ts[k], te[k]):
            h = h * _BASE + np.uint64(cps[i])
            p = p * _BASE
        th[k - k0] = h
        tp[k - k0] = p
    return th, tp


@njit(cache=True)
def _ngram_hash(th, tp, k, n, sep) -> np.int64:
    h = th[k]
    for t in range(k + 1, k + n):
        if sep:
            h = h * _BASE + np.uint64(32)
        h = h * tp[t] + th[t]
    return np.int64(h)


@njit(cache=True)
def _table_slot(keys, used, h) -> int:
    """Open-addressing slot of `h` in a power-of-two table: its slot if present, else the free one to use."""
    mask = keys.shape[0] - 1
    i = (h ^ (h >> 29)) & mask
    while used[i] and keys[i] != h:
        i = (i + 1) & mask
    return i


@njit(cache=True)
def repetition_stats(cps, cp_off, ts, te, tok_off, fl, top_ns, dup_ns) -> np.ndarray:
    """Gopher repetition counts per document (float64 matrix; see module constants for the columns).

    Paragraphs split the stripped text on runs of 2+ newlines, lines split the text on runs of newlines.
    Column N_REP_FIXED + i: characters of the most frequent `top_ns[i]`-gram (words joined by spaces)
    times its count, the first seen winning ties. Column N_REP_FIXED + len(top_ns) + j: characters of
    `dup_ns[j]`-grams (words joined without spaces) that repeat an earlier one, scanning left to right and
    jumping past each repeat.
    """
    n_docs = cp_off.shape[0] - 1
    n_top = top_ns.shape[0]
    out = np.zeros((n_docs, N_REP_FIXED + n_top + dup_ns.shape[0]), dtype=np.float64)
    for d in range(n_docs):
        a0, b0 = cp_off[d], cp_off[d + 1]
        hashes = np.empty(b0 - a0 + 2, dtype=np.int64)
        lengths = np.empty(b0 - a0 + 2, dtype=np.int64)
        s, e = a0, b0
        while s < e and has(fl, cps[s], SPACE):
            s += 1
        while e > s and has(fl, cps[e - 1], SPACE):
            e -= 1
        n = _split_runs(cps, s, e, 2, hashes, lengths)
        dup, dup_chars = duplicates(hashes[:n], lengths[:n])
        out[d, N_PARAS], out[d, DUP_PARAS], out[d, DUP_PARA_CHARS] = n, dup, dup_chars
        n = _split_runs(cps, a0, b0, 1, hashes, lengths)
        dup, dup_chars = duplicates(hashes[:n], lengths[:n])
        out[d, N_REP_LINES], out[d, DUP_LINES], out[d, DUP_LINE_CHARS] = n, dup, dup_chars

        k0, k1 = tok_off[d], tok_off[d + 1]
        nw = k1 - k0
        th, tp = _token_hashes(cps, ts, te, k0, k1)
        size = 1
        while size < 2 * nw + 2:
            size *= 2
        keys = np.empty(size, dtype=np.int64)
        used = np.zeros(size, dtype=np.bool_)
        counts = np.zeros(size, dtype=np.int64)
        firsts = np.zeros(size, dtype=np.int64)
        for q in range(n_top):
            n = top_ns[q]
            m = nw - n + 1
            if m <= 0:
                continue
            used[:] = False
            best_count, best_first = 0, m
            for k in range(m):
                h = _ngram_hash(th, tp, k, n, True)
                i = _table_slot(keys, used, h)
                if not used[i]:
                    used[i] = True
                    keys[i] = h
                    counts[i] = 0
                    firsts[i] = k
                counts[i] += 1
                if counts[i] > best_count or (counts[i] == best_count and firsts[i] < best_first):
                    best_count, best_first = counts[i], firsts[i]
            chars = n - 1
            for t in range(k0 + best_first, k0 + best_first + n):
                chars += te[t] - ts[t]
            out[d, N_REP_FIXED + q] = chars * best_count
        for q in range(dup_ns.shape[0]):
            n = dup_ns[q]
            used[:] = False
            repeated = 0
            k = 0
            while k < nw - n + 1:
                h = _ngram_hash(th, tp, k, n, False)
                i = _table_slot(keys, used, h)
                if used[i]:
                    for t in range(k0 + k, k0 + k + n):
                        repeated += te[t] - ts[t]
                    k += n
                else:
                    used[i] = True
                    keys[i] = h
                    k += 1
            out[d, N_REP_FIXED + n_top + q] = repeated
    return out
