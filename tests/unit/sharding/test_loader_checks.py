"""Shard checks run once per shard and process: shared by producer threads, ahead in the background."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from loader_shard_fixture import id_docs, write_shards

from sharding import CorruptShardError, LoaderOptions, TokenLoader
from sharding.loader import batcher as loader_plan
from sharding.loader.manifest import read_manifest
from sharding.loader.store import ShardChecks, ShardStore


def test_a_verdict_is_computed_once_while_other_threads_wait_for_it() -> None:
    checks = ShardChecks()
    calls: list[int] = []
    gate = threading.Event()

    def slow() -> str | None:
        calls.append(1)
        gate.wait(5)
        return "bad bytes"

    got: list[str | None] = []
    threads = [threading.Thread(target=lambda: got.append(checks.verdict(3, slow))) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(5)
    assert got == ["bad bytes"] * 4 and len(calls) == 1
    assert checks.verdict(3, lambda: None) == "bad bytes"  # kept


def test_a_failed_check_is_not_kept() -> None:
    checks = ShardChecks()

    def broken() -> str | None:
        raise OSError("disk went away")

    with pytest.raises(OSError, match="went away"):
        checks.verdict(0, broken)
    assert not checks.known(0)
    assert checks.verdict(0, lambda: None) is None


def test_stores_sharing_checks_hash_each_shard_once_and_agree_on_corruption(tmp_path, hashed) -> None:
    manifest = write_shards(tmp_path / "a", id_docs(40, seed=1), docs_per_shard=10)
    shard = manifest.parent / "shard-000002.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF
    shard.write_bytes(bytes(data))
    m = read_manifest(str(manifest))
    one, two = ShardStore(m), ShardStore(m)
    two.share_checks(one)
    assert [x is None for x in one.tokens_many([0, 1, 3])] == [False] * 3
    assert np.array_equal(two.tokens(1), one.tokens(1))
    for store in (one, two):
        with pytest.raises(CorruptShardError, match="shard-000002.tar: sha256"):
            store.tokens(2)
    assert hashed == {f"shard-00000{i}.tar": 1 for i in range(4)}
    other = ShardStore(read_manifest(str(write_shards(tmp_path / "b", id_docs(5, seed=2), docs_per_shard=5))))
    with pytest.raises(ValueError, match="different manifests"):
        other.share_checks(one)


def test_local_shards_are_checked_ahead_when_prefetched(tmp_path, hashed) -> None:
    manifest = write_shards(tmp_path / "a", id_docs(30, seed=3), docs_per_shard=10)
    store = ShardStore(read_manifest(str(manifest)))
    store.prefetch([2, 0])
    deadline = time.monotonic() + 10
    while not (store.checks.known(0) and store.checks.known(2)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.checks.known(0) and store.checks.known(2) and not store.checks.known(1)
    store.tokens(0)
    store.tokens(2)
    assert hashed == {"shard-000000.tar": 1, "shard-000002.tar": 1}
    store.close()


def test_two_producers_hash_each_shard_once(tmp_path, hashed, monkeypatch) -> None:
    monkeypatch.setattr(loader_plan, "CHUNK_TOKENS", 64)  # chunks of 4 steps: both producers read every shard
    manifest = write_shards(tmp_path / "a", id_docs(200, seed=4), docs_per_shard=10)
    loader = TokenLoader(
        manifest, seq_len=8, batch_size=2, seed=1, options=LoaderOptions(producers=2), block_shards=2
    )
    single = TokenLoader(
        manifest, seq_len=8, batch_size=2, seed=1, options=LoaderOptions(producers=1), block_shards=2
    )
    assert loader.batcher.chunk_steps == 4
    got = [b["input_ids"].clone() for b in loader]
    assert len(hashed) == 20 and set(hashed.values()) == {1}
    want = [b["input_ids"].clone() for b in single]
    assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    loader.close()
    single.close()
