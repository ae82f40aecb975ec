"""The torch MinHash kernel is bit-identical to the CPU kernel (checked on CPU torch; no GPU needed)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dedup.minhash import minhash_signatures
from dedup.shingle import shingle_hashes


@pytest.mark.parametrize("block,chunk", [(32, 1 << 14), (4, 3), (1, 1)])
def test_torch_signatures_equal_cpu_signatures(block: int, chunk: int) -> None:
    from benchmarks.minhash_torch import minhash_from_hashes_torch

    rng = np.random.default_rng(0)
    words = [f"w{x}" for x in range(500)]
    texts = [" ".join(rng.choice(words, int(rng.integers(0, 60)))) for _ in range(40)] + ["", "one"]
    hashes, offsets = shingle_hashes(pa.array(texts), ngram=3)
    cpu = minhash_signatures(pa.array(texts), num_perm=64, ngram=3, seed=5)
    dev = minhash_from_hashes_torch(hashes, offsets, num_perm=64, seed=5, device="cpu", block=block,
                                    chunk_blocks=chunk)
    assert dev.dtype == np.uint32
    assert np.array_equal(dev, cpu)


def test_torch_kernel_checks_offsets() -> None:
    from benchmarks.minhash_torch import minhash_from_hashes_torch

    with pytest.raises(ValueError, match="offsets"):
        minhash_from_hashes_torch(np.zeros(4, np.uint64), np.array([0, 3]), device="cpu")
