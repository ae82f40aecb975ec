"""Fixtures shared by the loader tests: checksum counting, two small datasets, one-step chunks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from loader_batches import SEQ
from loader_shard_fixture import id_docs, write_shards

from sharding.loader import batcher as loader_plan
from sharding.loader import kernels
from sharding.loader import store as loader_store


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the checksum computations per shard file name."""
    seen: Counter[str] = Counter()
    real = loader_store.checksum

    def counting(path, buf):  # type: ignore[no-untyped-def]
        seen[Path(path).name] += 1
        return real(path, buf)

    monkeypatch.setattr(loader_store, "checksum", counting)
    return seen


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    kernels.kernels()  # chunks of several steps from the first batch (the kernel path)
    docs = id_docs(150, seed=7, max_len=30)
    return write_shards(tmp_path_factory.mktemp("review") / "a", docs, docs_per_shard=20), docs


@pytest.fixture(scope="module")
def ds_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = id_docs(60, seed=8, max_len=30, first_id=1000)
    return write_shards(tmp_path_factory.mktemp("review") / "b", docs, docs_per_shard=15)


@pytest.fixture
def short_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # one step of 2 x 16 tokens per chunk, so producers alternate every step
    monkeypatch.setattr(loader_plan, "CHUNK_TOKENS", 2 * SEQ)
