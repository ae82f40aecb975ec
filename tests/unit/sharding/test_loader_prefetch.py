"""The prefetch thread of a TokenLoader without workers: it packs ahead of the consumer, but the
loader's position, resumption and shutdown follow the batches handed out, never the ones made ahead."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from loader_shard_fixture import id_docs, write_shards

from sharding import LoaderOptions, TokenLoader
from sharding.loader import kernels
from sharding.loader.batcher import HostBatcher

SEQ = 16
BATCH = 2
STEPS = 24
KEYS = ("input_ids", "labels", "position_ids", "cu_seqlens")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kernels.kernels()  # packed several steps per chunk from the start, so the thread runs ahead
    return write_shards(
        tmp_path_factory.mktemp("prefetch") / "a", id_docs(150, seed=3, max_len=30), docs_per_shard=20
    )


def _loader(manifest: Path, producers: int = 1) -> TokenLoader:
    return TokenLoader(
        manifest,
        seq_len=SEQ,
        batch_size=BATCH,
        seed=5,
        steps_per_epoch=STEPS,
        options=LoaderOptions(prefetch=2, producers=producers),
    )


# one prefetch thread over HostBatcher.chunks, or two producer threads over HostBatcher.strided_chunks
PRODUCERS = pytest.mark.parametrize("producers", [1, 2])


def _copy(batch: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _reference(loader: TokenLoader) -> list[dict]:
    """Each step made on its own in this thread: no prefetch thread, no chunking."""
    return [loader.batcher.batch(step) for step in range(STEPS)]


def _assert_batches(got: list[dict], want: list[dict]) -> None:
    assert [int(b["step"]) for b in got] == [int(b["step"]) for b in want]
    for a, b in zip(got, want, strict=True):
        for k in KEYS:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k


def _made_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Steps the loader's producer has packed so far (recorded as each chunk leaves HostBatcher)."""
    made: list[int] = []
    chunks, strided = HostBatcher.chunks, HostBatcher.strided_chunks

    def recorded(self, first, stop, *, keep=4):  # type: ignore[no-untyped-def]
        for chunk in chunks(self, first, stop, keep=keep):
            made.extend(int(b["step"]) for b in chunk)
            yield chunk

    def recorded_strided(self, first, stop, **kw):  # type: ignore[no-untyped-def]
        for chunk in strided(self, first, stop, **kw):
            made.extend(int(b["step"]) for b in chunk or [])
            yield chunk

    monkeypatch.setattr(HostBatcher, "chunks", recorded)
    monkeypatch.setattr(HostBatcher, "strided_chunks", recorded_strided)
    return made


def _wait_until(cond, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def _prefetch_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("token-loader-") and t.is_alive()}


@PRODUCERS
def test_state_counts_handed_out_batches_and_resumes_like_the_unthreaded_path(
    manifest, monkeypatch, producers
) -> None:
    made = _made_steps(monkeypatch)
    loader = _loader(manifest, producers)
    want = _reference(loader)
    it = iter(loader)
    head = [_copy(next(it)) for _ in range(3)]
    _wait_until(lambda: len(made) > 3)  # the thread has packed batches not handed out yet
    state = loader.state_dict()
    assert state["step"] == 3 and state["epoch"] == 0
    loader.close()
    resumed = _loader(manifest, producers)
    resumed.load_state_dict(state)
    tail = [_copy(b) for b in resumed]
    resumed.close()
    _assert_batches(head + tail, want)


@PRODUCERS
def test_load_state_dict_mid_iteration_drops_the_prefetched_batches(manifest, monkeypatch, producers) -> None:
    made = _made_steps(monkeypatch)
    loader = _loader(manifest, producers)
    want = _reference(loader)
    before = _prefetch_threads()
    it = iter(loader)
    for _ in range(2):
        next(it)
    saved = loader.state_dict()
    for _ in range(4):
        next(it)
    _wait_until(lambda: len(made) > 6)
    loader.load_state_dict(saved)
    assert _prefetch_threads() <= before  # the old iteration's thread is stopped and joined
    with pytest.raises(StopIteration):
        next(it)  # the old iteration ended: its batches ahead of the position are gone
    assert loader.state_dict()["step"] == 2
    again = [_copy(b) for b in loader]
    loader.close()
    _assert_batches(again, want[2:])


@PRODUCERS
def test_close_and_a_new_iteration_join_the_prefetch_thread(manifest, producers) -> None:
    before = _prefetch_threads()
    loader = _loader(manifest, producers)
    it = iter(loader)
    next(it)
    # a producer with no chunk left may already have ended
    assert 0 < len(_prefetch_threads() - before) <= producers
    it2 = iter(loader)  # a new iteration replaces the running one and its threads
    next(it2)
    assert 0 < len(_prefetch_threads() - before) <= producers
    loader.close()
    assert _prefetch_threads() <= before
    assert loader.state_dict()["step"] == 2  # both iterations' handed-out batches count


@PRODUCERS
def test_an_error_in_the_thread_is_raised_at_the_step_that_needs_it(manifest, monkeypatch, producers) -> None:
    chunks, strided = HostBatcher.chunks, HostBatcher.strided_chunks

    def failing(self, first, stop, *, keep=4):  # type: ignore[no-untyped-def]
        for chunk in chunks(self, first, stop, keep=keep):
            for b in chunk:
                if int(b["step"]) == 5:
                    raise OSError("shard read failed at step 5")
                yield [b]

    def failing_strided(self, first, stop, **kw):  # type: ignore[no-untyped-def]
        for chunk in strided(self, first, stop, **kw):
            for b in chunk or []:
                if int(b["step"]) == 5:
                    raise OSError("shard read failed at step 5")
                yield [b]
            if chunk is None:
                yield None

    monkeypatch.setattr(HostBatcher, "chunks", failing)
    monkeypatch.setattr(HostBatcher, "strided_chunks", failing_strided)
    before = _prefetch_threads()
    loader = _loader(manifest, producers)
    steps = []
    with pytest.raises(OSError, match="step 5"):
        for b in loader:
            steps.append(int(b["step"]))
    assert steps == [0, 1, 2, 3, 4]
    assert loader.state_dict()["step"] == 5
    assert _prefetch_threads() <= before
    loader.close()
