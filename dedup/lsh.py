"""LSH banding: the (bands, rows) choice, its S-curve, and band keys of MinHash signatures.

Two documents become candidates when all `rows` slots of at least one of `bands` bands agree. For Jaccard
similarity s the probability is the S-curve P(s) = 1 - (1 - s^rows)^bands. `optimal_param` picks
(bands, rows) with bands * rows <= num_perm minimizing
    fp_weight * integral_0^t P(s) ds + fn_weight * integral_t^1 (1 - P(s)) ds,
the same objective and search order as datasketch's `_optimal_param` (it breaks ties the same way).

S-curves at t = 0.8 with 128 permutations:

    Jaccard s                   0.50   0.60   0.70   0.75   0.80   0.85   0.90   0.95
    weights 0.5/0.5:   9 x 13   0.001  0.012  0.084  0.195  0.399  0.686  0.929  0.998
    weights 0.05/0.95: 16 x 8   0.061  0.237  0.613  0.815  0.947  0.994  1.000  1.000   (DedupConfig default)

Balanced weights are strict at the threshold and lose about 12% of the pairs with J >= 0.8. The engine
verifies every candidate edge by signature Jaccard, so false positives only cost a cheap check: its defaults
weight false negatives 0.95 (benchmarks/dedup_quality.py measures the resulting recall and precision).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from dedup.shingle import fmix64

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(64)


def s_curve(similarity: np.ndarray | float, bands: int, rows: int) -> np.ndarray:
    """Probability that two documents with Jaccard `similarity` share at least one band.

    >>> round(float(s_curve(0.8, 9, 13)), 3)
    0.399
    """
    s = np.asarray(similarity, dtype=np.float64)
    return 1.0 - (1.0 - s**rows) ** bands


def _integral(lo: float, hi: float, bands: np.ndarray, rows: np.ndarray, false_negative: bool) -> np.ndarray:
    s = (hi - lo) / 2 * _GL_NODES[:, None] + (hi + lo) / 2
    p = 1.0 - (1.0 - s ** rows[None, :]) ** bands[None, :]
    values = 1.0 - p if false_negative else p
    return (hi - lo) / 2 * (_GL_WEIGHTS[:, None] * values).sum(axis=0)


def optimal_param(
    threshold: float, num_perm: int, false_positive_weight: float = 0.5, false_negative_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false positive and false negative areas of the S-curve.

    Same semantics as datasketch's `MinHashLSH` parameter choice. Raises ValueError for a threshold outside
    (0, 1), num_perm < 2, negative weights or weights that sum to 0.

    >>> optimal_param(0.8, 128)
    (9, 13)
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    if num_perm < 2:
        raise ValueError(f"num_perm must be >= 2, got {num_perm!r}")
    if false_positive_weight < 0 or false_negative_weight < 0 or false_positive_weight + false_negative_weight <= 0:
        raise ValueError(
            f"weights must be >= 0 and not both 0, got {false_positive_weight!r}, {false_negative_weight!r}"
        )
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    bands = np.array([p[0] for p in pairs], dtype=np.float64)
    rows = np.array([p[1] for p in pairs], dtype=np.float64)
    fp = _integral(0.0, threshold, bands, rows, false_negative=False)
    fn = _integral(threshold, 1.0, bands, rows, false_negative=True)
    error = fp * false_positive_weight + fn * false_negative_weight
    return pairs[int(np.argmin(error))]  # argmin keeps the first minimum, as datasketch's strict '<' does


def resolve_bands(
    threshold: float,
    num_perm: int,
    bands: int | None,
    rows: int | None,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """Explicit (bands, rows) when both are given (checked against num_perm), else `optimal_param`."""
    if bands is None and rows is None:
        return optimal_param(threshold, num_perm, false_positive_weight, false_negative_weight)
    if bands is None or rows is None:
        raise ValueError(f"set both bands and rows or neither, got bands={bands!r} rows={rows!r}")
    if bands < 1 or rows < 1 or bands * rows > num_perm:
        raise ValueError(f"bands * rows must be in [1, num_perm={num_perm}], got {bands} x {rows}")
    return bands, rows


@nb.njit(parallel=True, nogil=True, cache=True)
def _band_keys(sig, bands, rows, out):  # type: ignore[no-untyped-def]
    for d in nb.prange(sig.shape[0]):
        for band in range(bands):
            h = np.uint64(0x2545F4914F6CDD1D) ^ np.uint64(band)
            for r in range(rows):
                h = fmix64(h ^ np.uint64(sig[d, band * rows + r]) ^ (h << np.uint64(13)))
            out[d, band] = np.int64(h)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """64-bit keys of each signature's bands: an (n, bands) int64 array (Spark's long).

    Band i covers slots [i*rows, (i+1)*rows). Equal bands give equal keys; different bands collide with
    probability ~2^-64. Raises ValueError when bands * rows exceeds the signature width.
    """
    if signatures.ndim != 2:
        raise ValueError(f"signatures must be 2-D (n, num_perm), got shape {signatures.shape}")
    if bands < 1 or rows < 1 or bands * rows > signatures.shape[1]:
        raise ValueError(f"bands * rows must be in [1, {signatures.shape[1]}], got {bands} x {rows}")
    out = np.empty((signatures.shape[0], bands), dtype=np.int64)
    _band_keys(np.ascontiguousarray(signatures, dtype=np.uint32), int(bands), int(rows), out)
    return out
