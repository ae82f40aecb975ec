"""MinHash signatures with K hash permutations, computed on whole Arrow string arrays (numba, all cores).

Permutation k maps a 64-bit shingle hash x to ((a_k * x + b_k) mod 2^64) >> 32 with a_k odd: a
multiply-add-shift hash (Dietzfelbinger), a 2-universal family on the well-mixed shingle hashes. A
signature row holds, per permutation, the minimum over the document's shingle set: uint32, K values per
document. A document without shingles gets EMPTY (0xFFFFFFFF) in every slot; callers should leave such
documents out of LSH (`is_empty`). The permutations depend only on (num_perm, seed), so signatures are
identical across runs, machines, partitions and batch boundaries.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pyarrow as pa

from dedup.arrow_buffers import utf8_buffers
from dedup.shingle import SEPARATOR, ShingleMode, check_shingle_args, doc_shingles

EMPTY = np.uint32(0xFFFFFFFF)
_MAX64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) uint64 coefficients of `num_perm` permutations; a is odd. Deterministic in `seed`.

    Raises ValueError for num_perm < 1 or a negative seed.
    """
    if not isinstance(num_perm, int | np.integer) or num_perm < 1:
        raise ValueError(f"num_perm must be a positive int, got {num_perm!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


@nb.njit(inline="always")
def _update(h: np.uint64, a: np.ndarray, b: np.ndarray, mins: np.ndarray) -> None:
    for k in range(a.shape[0]):
        v = h * a[k] + b[k]
        if v < mins[k]:
            mins[k] = v


@nb.njit(parallel=True, nogil=True, cache=True)
def _minhash_texts(data, offsets, ngram, mode, sep, a, b, out):  # type: ignore[no-untyped-def]
    n = offsets.shape[0] - 1
    for d in nb.prange(n):
        start = offsets[d]
        end = offsets[d + 1]
        tok = np.empty(end - start + 1, dtype=np.uint64)
        sh = np.empty(end - start + 1, dtype=np.uint64)
        ns = doc_shingles(data, start, end, ngram, mode, sep, tok, sh)
        mins = np.full(a.shape[0], _MAX64, dtype=np.uint64)
        for s in range(ns):
            _update(sh[s], a, b, mins)
        for k in range(a.shape[0]):
            out[d, k] = np.uint32(mins[k] >> np.uint64(32))


@nb.njit(parallel=True, nogil=True, cache=True)
def _minhash_hashes(hashes, offsets, a, b, out):  # type: ignore[no-untyped-def]
    n = offsets.shape[0] - 1
    for d in nb.prange(n):
        mins = np.full(a.shape[0], _MAX64, dtype=np.uint64)
        for s in range(offsets[d], offsets[d + 1]):
            _update(hashes[s], a, b, mins)
        for k in range(a.shape[0]):
            out[d, k] = np.uint32(mins[k] >> np.uint64(32))


def minhash_signatures(
    texts: pa.Array | pa.ChunkedArray,
    *,
    num_perm: int = 128,
    ngram: int = 5,
    mode: ShingleMode = "word",
    seed: int = 42,
) -> np.ndarray:
    """MinHash signatures of every text, straight from the Arrow buffers: an (n, num_perm) uint32 array.

    Shingling is `dedup.shingle`'s (word or char n-grams over the documented normalization). Runs on all
    numba threads (`numba.set_num_threads` bounds them). Raises ValueError for bad arguments, a non-string
    array or null texts.
    """
    code = check_shingle_args(ngram, mode)
    a, b = permutations(num_perm, seed)
    data, offsets = utf8_buffers(texts)
    out = np.empty((len(offsets) - 1, num_perm), dtype=np.uint32)
    _minhash_texts(data, offsets, int(ngram), code, SEPARATOR, a, b, out)
    return out


def minhash_from_hashes(hashes: np.ndarray, offsets: np.ndarray, *, num_perm: int = 128, seed: int = 42) -> np.ndarray:
    """MinHash signatures from precomputed shingle hashes (`dedup.shingle.shingle_hashes` output).

    Equal to `minhash_signatures` on the same texts. Raises ValueError when offsets are not a
    non-decreasing int array starting at 0 and ending at len(hashes).
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(hashes):
        raise ValueError(f"offsets must run from 0 to len(hashes)={len(hashes)}, got {offsets[:3]}...{offsets[-3:]}")
    if np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must be non-decreasing")
    a, b = permutations(num_perm, seed)
    out = np.empty((len(offsets) - 1, num_perm), dtype=np.uint32)
    _minhash_hashes(hashes, offsets, a, b, out)
    return out


def is_empty(signatures: np.ndarray) -> np.ndarray:
    """Boolean mask of the signatures of documents without any shingle (all slots EMPTY)."""
    return np.all(signatures == EMPTY, axis=1)


def signature_jaccard(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of paired signatures: the fraction of equal slots, float64 in [0, 1].

    `left` and `right` are (n, K) (or (K,)) arrays of the same shape; raises ValueError otherwise.
    """
    if left.shape != right.shape:
        raise ValueError(f"signature shapes differ: {left.shape} vs {right.shape}")
    return np.mean(left == right, axis=-1)
