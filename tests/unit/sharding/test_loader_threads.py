"""Loader threads: a second iterator ends the first without replaying or losing a step, close() stops every
thread and is idempotent, held batches stay intact, a skipped shard is named once by two threads, producers
check each shard once after close(), and an old prefetch thread never runs beside a new position (three of
these first failed on real bugs, since fixed)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from loader_batches import (
    SEQ,
    _collect,
    _copy,
    _corrupt_copy,
    _loader_threads,
    _reference,
    _same,
)

from sharding import LoaderOptions, TokenLoader
from sharding.loader import batcher as loader_plan
from sharding.loader import store as loader_store
from sharding.loader import stream as loader_stream

# -------------------------------------------------------------------- iterating twice and closing


@pytest.mark.parametrize("producers", [1, 2])
def test_a_second_iterator_ends_the_first_without_replaying_or_losing_a_step(ds, short_chunks, producers):
    manifest, _ = ds
    kw = dict(
        seq_len=SEQ, batch_size=2, seed=9, steps_per_epoch=10, options=LoaderOptions(producers=producers, prefetch=2)
    )
    full = _collect(TokenLoader(manifest, **kw))
    loader = TokenLoader(manifest, **kw)
    it1 = iter(loader)
    got = [_copy(next(it1)) for _ in range(3)]
    it2 = iter(loader)
    with pytest.raises(StopIteration):
        next(it1)
    got += [_copy(b) for b in it2]
    _same(got, full)
    loader.close()


@pytest.mark.parametrize("producers", [1, 2])
def test_close_stops_every_thread_is_idempotent_and_the_loader_continues(ds, short_chunks, producers):
    manifest, _ = ds
    kw = dict(
        seq_len=SEQ, batch_size=2, seed=1, steps_per_epoch=12, options=LoaderOptions(producers=producers, prefetch=2)
    )
    full = _collect(TokenLoader(manifest, **kw))
    before = _loader_threads()
    loader = TokenLoader(manifest, **kw)
    head = _collect(loader, 4)
    loader.close()
    assert _loader_threads() <= before
    loader.close()
    tail = _collect(loader)
    _same(head + tail, full)
    loader.close()
    assert _loader_threads() <= before


def test_batches_held_without_copying_stay_intact_with_two_producers(ds, short_chunks) -> None:
    manifest, _ = ds
    loader = TokenLoader(
        manifest, seq_len=SEQ, batch_size=2, seed=2, steps_per_epoch=30, options=LoaderOptions(producers=2, prefetch=1)
    )
    held = list(loader)  # every batch kept, none cloned: no array of the pools may be reused under them
    _same(held, _reference(loader, range(30)))
    views = [b["input_ids"][0] for b in _collect(loader)]  # views of tensors keep their memory too
    loader.close()
    assert len(views) == 30


# ------------------------------------------------------------------------------- threads and checks


def test_a_skipped_shard_is_named_once_by_two_threads(ds, tmp_path, monkeypatch) -> None:
    from sharding.loader.manifest import read_manifest
    from sharding.loader.store import ShardStore

    manifest, _ = ds
    bad = read_manifest(str(_corrupt_copy(manifest, tmp_path / "bad")))
    stores = [ShardStore(bad, on_corrupt="skip") for _ in range(2)]
    stores[1].share_checks(stores[0])  # as TokenLoader links its producers' batchers
    real = loader_store.log
    together = threading.Barrier(2, timeout=2)
    named: list[str] = []

    class Log:  # the real logger, but a warning waits (up to 2 s) for the other thread to warn too
        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(real, name)

        def warning(self, msg, *args):  # type: ignore[no-untyped-def]
            named.append(msg % args)
            try:
                together.wait()
            except threading.BrokenBarrierError:
                pass  # the other thread did not warn: the shard was named once
            real.warning(msg, *args)

    monkeypatch.setattr(loader_store, "log", Log())
    got: list[object] = []
    threads = [threading.Thread(target=lambda s=s: got.append(s.tokens(2))) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for s in stores:
        s.close()
    assert got == [None, None]  # both skip it
    assert len(named) == 1, named


def test_after_close_two_producers_still_check_each_shard_once(ds, short_chunks, hashed) -> None:
    manifest, _ = ds
    loader = TokenLoader(
        manifest, seq_len=SEQ, batch_size=2, seed=0, options=LoaderOptions(producers=2), block_shards=2
    )
    _collect(loader)
    assert len(hashed) == 8 and max(hashed.values()) == 1
    loader.close()  # releases shard maps; the next epoch checks shards again
    hashed.clear()
    _collect(loader)
    loader.close()
    assert len(hashed) == 8 and max(hashed.values()) == 1, hashed


def test_a_new_position_never_runs_beside_the_old_prefetch_thread(ds, monkeypatch) -> None:
    manifest, _ = ds
    monkeypatch.setattr(loader_plan, "CHUNK_TOKENS", 2 * SEQ)  # one step, one pack call per chunk
    real = loader_stream.SourceStream.pack
    lock = threading.Lock()
    inside: Counter[int] = Counter()
    overlaps: list[str] = []
    calls: list[threading.Thread] = []
    entered, release = threading.Event(), threading.Event()

    def pack(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            inside[id(self)] += 1
            if inside[id(self)] > 1:
                overlaps.append(threading.current_thread().name)
            calls.append(threading.current_thread())
            slow = len(calls) == 2  # the thread's second chunk: a read stalls (a slow disk or S3)
        try:
            if slow:
                entered.set()
                release.wait(8)  # longer than the 5 s join timeout; released once the test has looked
            return real(self, *args, **kwargs)
        finally:
            with lock:
                inside[id(self)] -= 1

    monkeypatch.setattr(loader_stream.SourceStream, "pack", pack)
    loader = TokenLoader(
        manifest, seq_len=SEQ, batch_size=2, seed=0, options=LoaderOptions(producers=1, prefetch=1)
    )
    it = iter(loader)
    next(it)
    try:
        assert entered.wait(10)
        old = calls[1]
        loader.load_state_dict(loader.state_dict())
        old_alive = old.is_alive()
        _collect(loader, 3)
        assert not old_alive, "load_state_dict returned while the old prefetch thread still runs"
        assert not overlaps, f"two threads packed on one stream at once: {overlaps}"
    finally:
        release.set()
        loader.close()
        calls[1].join(10)
