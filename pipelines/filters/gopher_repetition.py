"""`gopher_repetition`: Gopher's repetition rules (Rae et al. 2021, Table A1) and their counting kernel.

Fractions of duplicated lines and paragraphs (by count and by characters), of characters in the most
frequent word 2-4-grams, and of characters in repeated word 5-10-grams. The kernel hashes each document's
segments and n-grams once (polynomial hashes, open addressing), so its cost is linear in the words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numba import njit
from pydantic import Field

from pipelines.filters import stats as S
from pipelines.filters.base import BaseFilter, BatchContext, FilterResult
from pipelines.filters.chars import SPACE
from pipelines.filters.rules import first_reason, ratio
from pipelines.filters.stats import duplicates, segment_hash
from pipelines.filters.words import has

# Columns of the matrix returned by `repetition_stats` (then one per top n-gram size, one per dup n-gram size).
N_PARAS, DUP_PARAS, DUP_PARA_CHARS, N_REP_LINES, DUP_LINES, DUP_LINE_CHARS = 0, 1, 2, 3, 4, 5
N_REP_FIXED = 6


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
                hashes[n] = segment_hash(cps, seg, i)
                lengths[n] = i - seg
                n += 1
                seg = j
            i = j
        else:
            i += 1
    hashes[n] = segment_hash(cps, seg, b)
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


def repetition_fractions(
    st: np.ndarray, rep: np.ndarray, top_ns: Sequence[int], dup_ns: Sequence[int]
) -> dict:
    """Named fractions of a `repetition_stats` matrix: element fractions per element, char fractions per char."""
    chars = st[:, S.N_CHARS]
    out = {
        "dup_para_frac": ratio(rep[:, DUP_PARAS], rep[:, N_PARAS]),
        "dup_para_char_frac": ratio(rep[:, DUP_PARA_CHARS], chars),
        "dup_line_frac": ratio(rep[:, DUP_LINES], rep[:, N_REP_LINES]),
        "dup_line_char_frac": ratio(rep[:, DUP_LINE_CHARS], chars),
    }
    for i, n in enumerate(top_ns):
        out[f"top_{n}_gram_char_frac"] = ratio(rep[:, N_REP_FIXED + i], chars)
    for j, n in enumerate(dup_ns):
        out[f"dup_{n}_gram_char_frac"] = ratio(rep[:, N_REP_FIXED + len(top_ns) + j], chars)
    return out


def gopher_repetition_reasons(
    fr: dict, n: int, *, dup_line_frac: float | None, dup_para_frac: float | None,
    dup_line_char_frac: float | None, dup_para_char_frac: float | None,
    top_n_grams: Sequence[tuple[int, float]], dup_n_grams: Sequence[tuple[int, float]],
) -> np.ndarray:  # fmt: skip
    """Gopher repetition rules on `repetition_fractions` (datatrove's reason names)."""
    checks = [
        ("dup_para_frac", fr["dup_para_frac"] > dup_para_frac if dup_para_frac else None),
        ("dup_para_char_frac", fr["dup_para_char_frac"] > dup_para_char_frac if dup_para_char_frac else None),
        ("dup_line_frac", fr["dup_line_frac"] > dup_line_frac if dup_line_frac else None),
        ("dup_line_char_frac", fr["dup_line_char_frac"] > dup_line_char_frac if dup_line_char_frac else None),
    ]
    checks += [(f"top_{k}_gram", fr[f"top_{k}_gram_char_frac"] > f) for k, f in top_n_grams]
    checks += [(f"duplicated_{k}_n_grams", fr[f"dup_{k}_gram_char_frac"] > f) for k, f in dup_n_grams]
    return first_reason(n, checks)


class GopherRepetitionFilter(BaseFilter):
    """Gopher's repetition rules: duplicate lines/paragraphs and top/duplicate word n-gram character fractions."""

    name: Literal["gopher_repetition"] = "gopher_repetition"
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: list[tuple[int, float]] = Field(default_factory=lambda: [(2, 0.2), (3, 0.18), (4, 0.16)])
    dup_n_grams: list[tuple[int, float]] = Field(
        default_factory=lambda: [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]
    )

    # n-gram sizes other than these are judged but have no column
    signals = (
        "dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac",
        *(f"top_{n}_gram_char_frac" for n in (2, 3, 4)), *(f"dup_{n}_gram_char_frac" for n in range(5, 11)),
    )  # fmt: skip

    def apply(self, ctx: BatchContext) -> FilterResult:
        top_ns = [k for k, _ in self.top_n_grams]
        dup_ns = [k for k, _ in self.dup_n_grams]
        tc = ctx.counts

        def count() -> np.ndarray:
            ts, te, to = tc.tokens
            return repetition_stats(tc.cps, tc.cp_off, ts, te, to, tc.fl,
                                    np.array(top_ns, dtype=np.int64), np.array(dup_ns, dtype=np.int64))  # fmt: skip

        rep = tc.memo(("gopher_repetition", tuple(top_ns), tuple(dup_ns)), count)
        fr = repetition_fractions(tc.stats(), rep, top_ns, dup_ns)
        reasons = gopher_repetition_reasons(
            fr, ctx.num_rows, **self.model_dump(exclude={"name", "top_n_grams", "dup_n_grams"}),
            top_n_grams=self.top_n_grams, dup_n_grams=self.dup_n_grams,
        )  # fmt: skip
        return FilterResult(reasons, fr)
