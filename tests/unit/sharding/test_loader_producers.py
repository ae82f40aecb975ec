"""Two producer threads packing alternate chunks give exactly the batches of one producer and of the
numpy reference path, in order, across seeds, ranks, epochs, mixing and resumption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from loader_shard_fixture import id_docs, write_shards

from sharding import LoaderOptions, TokenLoader
from sharding.loader import batcher as loader_plan
from sharding.loader import kernels
from sharding.loader.batcher import HostBatcher, LoaderPlan
from sharding.loader.manifest import read_manifest

SEQ = 16
BATCH = 2
STEPS = 13  # not a multiple of the chunk length: the last chunk of an epoch is short
KEYS = ("input_ids", "labels", "position_ids", "cu_seqlens")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    kernels.kernels()  # chunks of several steps from the first batch
    root = tmp_path_factory.mktemp("producers")
    a = write_shards(root / "a", id_docs(160, seed=11, max_len=40), docs_per_shard=16)
    b = write_shards(root / "b", id_docs(90, seed=12, max_len=25), docs_per_shard=10)
    return a, b


@pytest.fixture(autouse=True)
def short_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 steps of 2 x 16 tokens per chunk, so an epoch spans several chunks on both producers
    monkeypatch.setattr(loader_plan, "CHUNK_TOKENS", 3 * BATCH * SEQ)


def _np(batch: dict) -> dict:
    return {k: np.array(batch[k]) for k in KEYS} | {"step": int(batch["step"])}


def _assert_same(got: list[dict], want: list[dict]) -> None:
    assert [b["step"] for b in got] == [int(b["step"]) for b in want]
    for a, b in zip(got, want, strict=True):
        for k in KEYS:
            assert np.array_equal(a[k], np.asarray(b[k])), (a["step"], k)


def _make(source, producers: int, *, seed: int, rank: int) -> TokenLoader:
    return TokenLoader(
        source,
        seq_len=SEQ,
        batch_size=BATCH,
        seed=seed,
        rank=rank,
        world_size=2,
        steps_per_epoch=STEPS,
        options=LoaderOptions(prefetch=2, producers=producers),
    )


def _run(source, producers: int, *, seed: int, rank: int, epochs: int) -> list[dict]:
    loader = _make(source, producers, seed=seed, rank=rank)
    assert loader.batcher.chunk_steps == 3
    got = [_np(b) for _ in range(epochs) for b in loader]
    loader.close()
    return got


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.parametrize("mixed", [False, True])
def test_two_producers_match_one_producer_and_the_reference(sources, seed, rank, mixed) -> None:
    source = list(sources) if mixed else sources[0]
    two = _run(source, 2, seed=seed, rank=rank, epochs=2)
    one = _run(source, 1, seed=seed, rank=rank, epochs=2)
    ref_loader = TokenLoader(
        source, seq_len=SEQ, batch_size=BATCH, seed=seed, rank=rank, world_size=2, steps_per_epoch=STEPS
    )
    want = [ref_loader.batcher.reference_batch(step) for step in range(2 * STEPS)]
    ref_loader.close()
    _assert_same(two, want)
    _assert_same(one, want)


def test_resume_mid_chunk_with_two_producers_continues_exactly(sources) -> None:
    want = _run(sources[0], 1, seed=3, rank=0, epochs=2)
    loader = _make(sources[0], 2, seed=3, rank=0)
    it = iter(loader)
    head = [_np(next(it)) for _ in range(4)]  # stops inside the second chunk
    state = loader.state_dict()
    assert state["step"] == 4
    loader.close()
    resumed = _make(sources[0], 2, seed=3, rank=0)
    resumed.load_state_dict(state)
    tail = [_np(b) for _ in range(2) for b in resumed]
    resumed.close()
    _assert_same(head + tail, want[: 4 + len(tail)])
    assert len(tail) == 2 * STEPS - 4


def test_strided_chunks_cover_every_step_once_in_chunk_order(sources) -> None:
    plan = LoaderPlan.build([read_manifest(str(sources[0]))], [1.0], seq_len=SEQ, global_batch=4, seed=1)
    batcher = HostBatcher(plan, rank=1, world_size=2)
    parts = [list(batcher.strided_chunks(2, 16, part=p, parts=2)) for p in range(2)]
    # chunk k of [2, 16) cut every 3 steps lies on part k % 2; each chunk's lists end with None
    steps = [[[int(b["step"]) for b in got] if got is not None else None for got in part] for part in parts]
    assert steps[0] == [[2, 3, 4], None, [8, 9, 10], None, [14, 15], None]
    assert steps[1] == [[5, 6, 7], None, [11, 12, 13], None]
    for part in parts:
        for got in part:
            for b in got or []:
                want = batcher.reference_batch(int(b["step"]))
                for k in KEYS:
                    assert np.array_equal(b[k], want[k]), k
    with pytest.raises(ValueError, match="part"):
        next(batcher.strided_chunks(0, 4, part=2, parts=2))
    batcher.close()


def test_tensors_from_two_producers_are_cpu_tensors(sources) -> None:
    loader = TokenLoader(
        sources[0], seq_len=SEQ, batch_size=BATCH, steps_per_epoch=STEPS, options=LoaderOptions(producers=2)
    )
    first = next(iter(loader))
    assert isinstance(first["input_ids"], torch.Tensor) and first["input_ids"].shape == (BATCH, SEQ)
    loader.close()
    with pytest.raises(ValueError, match="producers"):
        TokenLoader(sources[0], seq_len=SEQ, batch_size=BATCH, options=LoaderOptions(producers=0))
