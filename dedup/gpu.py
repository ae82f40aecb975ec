"""MinHash signatures on a GPU (torch): bit-identical to `dedup.minhash.minhash_from_hashes`.

Shingling stays on the CPU (`dedup.shingle.shingle_hashes`, numba); the device runs the K-fold part, which
dominates the cost: for each shingle hash x and permutation k, ((a_k * x + b_k) mod 2^64) >> 32, reduced
to a per-document minimum with `scatter_reduce(amin)`. torch has no unsigned 64-bit arithmetic, so values
live in int64: multiplication and addition wrap modulo 2^64 exactly as uint64 does, and flipping the sign
bit turns unsigned order into signed order for the minimum. Works on any torch device (CPU included, which
is how the unit tests check bit-identity). torch is an optional dependency (extra `loader`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dedup.minhash import permutations

if TYPE_CHECKING:
    import torch

_SIGN = -(2**63)


def _torch():  # type: ignore[no-untyped-def]
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the GPU MinHash kernel needs torch: pip install 'tokenmill[loader]'") from exc
    return torch


def minhash_from_hashes_torch(
    hashes: np.ndarray,
    offsets: np.ndarray,
    *,
    num_perm: int = 128,
    seed: int = 42,
    device: str | torch.device = "cuda",
    chunk_shingles: int = 1 << 18,
) -> np.ndarray:
    """(n, num_perm) uint32 MinHash signatures of precomputed shingle hashes, computed on `device`.

    Same inputs and result as `dedup.minhash.minhash_from_hashes` (bit for bit). `chunk_shingles` bounds
    device memory to about chunk_shingles * num_perm * 24 bytes. Raises ValueError for inconsistent
    offsets or a non-positive chunk size.
    """
    torch = _torch()
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(hashes):
        raise ValueError(f"offsets must run from 0 to len(hashes)={len(hashes)}")
    if chunk_shingles < 1:
        raise ValueError(f"chunk_shingles must be positive, got {chunk_shingles}")
    a_np, b_np = permutations(num_perm, seed)
    dev = torch.device(device)
    a = torch.from_numpy(a_np.view(np.int64)).to(dev)
    b = torch.from_numpy(b_np.view(np.int64)).to(dev)
    n_docs = len(offsets) - 1
    counts = torch.from_numpy(np.diff(offsets)).to(dev)
    doc_of = torch.repeat_interleave(torch.arange(n_docs, device=dev), counts)
    h_all = torch.from_numpy(hashes.view(np.int64)).to(dev)
    # all-ones (unsigned max) after the sign flip is int64 max: the neutral element of the minimum
    mins = torch.full((n_docs, num_perm), 2**63 - 1, dtype=torch.int64, device=dev)
    for lo in range(0, len(hashes), chunk_shingles):
        h = h_all[lo : lo + chunk_shingles]
        v = (h[:, None] * a[None, :] + b[None, :]) ^ _SIGN
        idx = doc_of[lo : lo + chunk_shingles, None].expand(-1, num_perm)
        mins.scatter_reduce_(0, idx, v, reduce="amin", include_self=True)
    top = ((mins ^ _SIGN) >> 32) & 0xFFFFFFFF  # arithmetic shift, masked: the high 32 bits as unsigned
    return top.to(torch.int64).cpu().numpy().astype(np.uint32)
