"""Invariants of the loader's pure order and partition functions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharding.loader.shuffle import (
    block_starts,
    block_token_offsets,
    document_permutation,
    mixture_block_counts,
    mixture_block_sources,
    normalize_weights,
    rank_windows,
    shard_permutation,
    worker_steps,
)


@given(n=st.integers(1, 300), seed=st.integers(0, 2**31), epoch=st.integers(0, 50))
@settings(max_examples=50, deadline=None)
def test_shard_permutation_is_a_deterministic_permutation(n: int, seed: int, epoch: int) -> None:
    p = shard_permutation(n, seed=seed, epoch=epoch)
    assert sorted(p.tolist()) == list(range(n))
    assert np.array_equal(p, shard_permutation(n, seed=seed, epoch=epoch))


def test_orders_change_with_epoch_seed_and_stream() -> None:
    base = shard_permutation(64, seed=1, epoch=0)
    assert not np.array_equal(base, shard_permutation(64, seed=1, epoch=1))
    assert not np.array_equal(base, shard_permutation(64, seed=2, epoch=0))
    assert not np.array_equal(base, shard_permutation(64, seed=1, epoch=0, stream=1))
    d = document_permutation(100, seed=1, epoch=0, block=0)
    assert sorted(d.tolist()) == list(range(100))
    assert not np.array_equal(d, document_permutation(100, seed=1, epoch=0, block=1))


def test_bad_arguments_raise_naming_the_value() -> None:
    with pytest.raises(ValueError, match="n_shards"):
        shard_permutation(0, seed=0, epoch=0)
    with pytest.raises(ValueError, match="seed"):
        shard_permutation(3, seed=-1, epoch=0)
    with pytest.raises(ValueError, match="block_shards"):
        block_starts(5, 0)
    with pytest.raises(ValueError, match="rank"):
        rank_windows(0, rank=4, batch_size=2, world_size=4)
    with pytest.raises(ValueError, match="weights"):
        normalize_weights([0.0, 0.0])
    with pytest.raises(ValueError, match="worker"):
        worker_steps(0, 10, worker=2, num_workers=2)


def test_block_token_offsets_follow_the_shard_order() -> None:
    sizes = np.array([10, 20, 30, 40, 50])
    order = np.array([4, 3, 2, 1, 0])
    assert block_token_offsets(sizes, order, 2).tolist() == [0, 90, 140, 150]
    assert block_starts(5, 2).tolist() == [0, 2, 4, 5]


@given(world=st.integers(1, 8), batch=st.integers(1, 8), steps=st.integers(1, 20))
@settings(max_examples=50, deadline=None)
def test_rank_windows_are_disjoint_and_cover_each_step(world: int, batch: int, steps: int) -> None:
    seen: list[int] = []
    for step in range(steps):
        for rank in range(world):
            lo, hi = rank_windows(step, rank=rank, batch_size=batch, world_size=world)
            assert hi - lo == batch
            seen.extend(range(lo, hi))
    assert seen == list(range(steps * world * batch))


@given(first=st.integers(0, 50), n=st.integers(0, 50), workers=st.integers(1, 5))
@settings(max_examples=50, deadline=None)
def test_worker_steps_partition_the_range_in_round_robin_order(first: int, n: int, workers: int) -> None:
    per_worker = [list(worker_steps(first, first + n, worker=w, num_workers=workers)) for w in range(workers)]
    merged = []
    for i in range(max((len(p) for p in per_worker), default=0)):
        merged.extend(p[i] for p in per_worker if i < len(p))
    assert merged == list(range(first, first + n))


def test_mixture_counts_are_exact_per_block_and_proportional_overall() -> None:
    w = [0.5, 0.3, 0.2 / 3, 0.4 / 3]
    counts = mixture_block_counts(w, block_windows=97, seed=5, first_block=0, n_blocks=400)
    assert counts.shape == (400, 4)
    assert (counts.sum(axis=1) == 97).all()
    share = counts.sum(axis=0) / counts.sum()
    assert np.allclose(share, normalize_weights(w), atol=2e-3)
    # a window of blocks computed alone matches the same blocks computed in one go
    tail = mixture_block_counts(w, block_windows=97, seed=5, first_block=123, n_blocks=10)
    assert np.array_equal(tail, counts[123:133])
    assert not np.array_equal(
        counts, mixture_block_counts(w, block_windows=97, seed=6, first_block=0, n_blocks=400)
    )


def test_mixture_block_sources_is_the_counted_multiset() -> None:
    src = mixture_block_sources(np.array([3, 0, 5]), seed=1, block=7)
    assert np.bincount(src, minlength=3).tolist() == [3, 0, 5]
    assert np.array_equal(src, mixture_block_sources(np.array([3, 0, 5]), seed=1, block=7))
