"""MinHash signatures on a GPU (torch): bit-identical to `dedup.minhash.minhash_from_hashes`.

Shingling stays on the CPU (`dedup.shingle.shingle_hashes`, numba); the device runs the K-fold part, which
dominates the cost: for each shingle hash x and permutation k, ((a_k * x + b_k) mod 2^64) >> 32, reduced
to a per-document minimum. Shingles are laid out in blocks of `block` positions that never straddle two
documents (padding masked out), so the minimum is a dense reduction over each block followed by a small
`scatter_reduce(amin)` over a document's blocks. torch has no unsigned 64-bit arithmetic, so values
live in int64: multiplication and addition wrap modulo 2^64 exactly as uint64 does, and flipping the sign
bit turns unsigned order into signed order for the minimum. Works on any torch device (CPU included, which
is how the unit tests check bit-identity). torch is an optional dependency (extra `loader`).

A benchmark kernel, not part of the dedup engine: `benchmarks/dedup_gpu.py` measures it against the CPU
kernel. The curate stage's signatures are computed by `dedup.minhash` on the CPU; wiring this kernel into
the engine waits for a machine with a GPU to test that wiring on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dedup.minhash import permutations

if TYPE_CHECKING:
    import torch

_SIGN = -(2**63)
_MAX = 2**63 - 1


def _block_min(h: torch.Tensor, valid: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per block, per permutation: the minimum of the sign-flipped a*h + b over the block's valid lanes."""
    import torch

    v = (h[:, :, None] * a + b) ^ _SIGN
    return torch.where(valid[:, :, None], v, _MAX).amin(dim=1)


_compiled: dict[str, object] = {}


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
    block: int = 32,
    chunk_blocks: int = 1 << 14,
    compile: bool = False,
) -> np.ndarray:
    """(n, num_perm) uint32 MinHash signatures of precomputed shingle hashes, computed on `device`.

    Same inputs and result as `dedup.minhash.minhash_from_hashes` (bit for bit). Device memory for the
    work is about chunk_blocks * block * num_perm * 17 bytes. Raises ValueError for inconsistent offsets
    or a non-positive block/chunk size. `compile=True` fuses the block reduction with torch.compile
    (one kernel instead of several passes over device memory; the first call pays the compilation).
    """
    torch = _torch()
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(hashes):
        raise ValueError(f"offsets must run from 0 to len(hashes)={len(hashes)}")
    if block < 1 or chunk_blocks < 1:
        raise ValueError(f"block and chunk_blocks must be positive, got {block}, {chunk_blocks}")
    a_np, b_np = permutations(num_perm, seed)
    dev = torch.device(device)
    a = torch.from_numpy(a_np.view(np.int64)).to(dev)
    b = torch.from_numpy(b_np.view(np.int64)).to(dev)
    n_docs = len(offsets) - 1
    # all-ones (unsigned max) after the sign flip is int64 max: the neutral element of the minimum
    mins = torch.full((n_docs, num_perm), _MAX, dtype=torch.int64, device=dev)
    reduce = _block_min
    if compile:
        reduce = _compiled.setdefault("block_min", torch.compile(_block_min, dynamic=True))  # type: ignore[assignment]
    if len(hashes):
        off = torch.from_numpy(offsets).to(dev)
        h_all = torch.from_numpy(hashes.view(np.int64)).to(dev)
        counts = off[1:] - off[:-1]
        blocks_per_doc = (counts + block - 1) // block
        block_doc = torch.repeat_interleave(torch.arange(n_docs, device=dev), blocks_per_doc)
        first_block = torch.cumsum(blocks_per_doc, 0) - blocks_per_doc
        lane = torch.arange(block, device=dev)
        for lo in range(0, len(block_doc), chunk_blocks):
            docs = block_doc[lo : lo + chunk_blocks]
            starts = off[docs] + (torch.arange(lo, lo + len(docs), device=dev) - first_block[docs]) * block
            pos = starts[:, None] + lane[None, :]
            valid = pos < off[docs + 1][:, None]
            h = h_all[pos.clamp_(max=len(hashes) - 1)]
            block_min = reduce(h, valid, a, b)
            mins.scatter_reduce_(0, docs[:, None].expand(-1, num_perm), block_min, reduce="amin", include_self=True)
    top = ((mins ^ _SIGN) >> 32) & 0xFFFFFFFF  # arithmetic shift, masked: the high 32 bits as unsigned
    return top.cpu().numpy().astype(np.uint32)
