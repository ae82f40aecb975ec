"""Packing samples into shards, the seeded order hash, the shard lookup tasks use, and the plan built in bucket
groups and merged."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharding.format.tar import END_NBYTES
from sharding.write.dataset_plan import (
    DuplicateSampleError,
    collision_mask,
    encode_group,
    group_buckets,
    merge_plans,
    plan_dataset,
)
from sharding.write.plan import (
    INTERPRETED_SAMPLES,
    MIN_SAMPLE_NBYTES,
    _assign,
    assign_shards,
    dataset_order,
    full_bytes,
    hash64,
    lookup_shards,
    order_hash,
    shard_runs,
)

TARGET = 64 * 1024


def shard_totals(sizes: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = int(ids.max()) + 1
    return np.bincount(ids, weights=sizes, minlength=k) + 1024, np.bincount(ids, minlength=k)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(4, 60).map(lambda b: b * 512), min_size=1, max_size=400))
def test_every_sample_lands_in_one_shard_never_over_target(blocks: list[int]) -> None:
    sizes = np.array(blocks, dtype=np.int64)
    ids = assign_shards(sizes, TARGET)
    assert ids.min() == 0 and (ids >= 0).all()
    assert set(np.unique(ids).tolist()) == set(range(int(ids.max()) + 1))
    totals, counts = shard_totals(sizes, ids)
    assert (totals <= TARGET).all()


def test_small_samples_fill_shards_within_two_percent() -> None:
    target = 1 << 20
    rng = np.random.default_rng(0)
    sizes = (rng.lognormal(9, 1.5, 30_000).astype(np.int64) // 512 + 4) * 512
    sizes = np.minimum(sizes, 600 * 1024)  # up to ~60% of a shard: only deferral fills the gaps they leave
    ids = assign_shards(sizes, target, fill=0.99)
    totals, _ = shard_totals(sizes, ids)
    assert (totals <= target).all()
    assert (totals[:-1] >= 0.98 * target).all()
    # with no room to wait (lookahead 1), the same order leaves some shards well under
    next_fit, _ = shard_totals(sizes, assign_shards(sizes, target, fill=0.99, lookahead=1))
    assert next_fit[:-1].min() < 0.9 * target


def test_oversized_sample_gets_its_own_shard_in_place() -> None:
    sizes = np.array([2048] * 10 + [TARGET * 3] + [2048] * 10, dtype=np.int64)
    ids = assign_shards(sizes, TARGET)
    assert ids[10] == 1 and (ids[:10] == 0).all() and (ids[11:] == 0).all()
    assert dataset_order(ids).tolist() == list(range(10)) + list(range(11, 21)) + [10]


def test_deferred_sample_opens_the_next_shard() -> None:
    sizes = np.array([30 * 1024, 30 * 1024, 20 * 1024, 2048, 2048], dtype=np.int64)
    ids = assign_shards(sizes, TARGET, fill=0.99, lookahead=8)
    # the 20 KiB doc does not fit after 60 KiB; the 2 KiB doc after it fills the first shard, whose 1 KiB
    # of room left then fits no sample, so the waiting doc opens shard 1
    assert ids.tolist() == [0, 0, 1, 0, 1]
    assert dataset_order(ids).tolist() == [0, 1, 3, 2, 4]


def test_assign_shards_edge_cases() -> None:
    assert assign_shards(np.empty(0, np.int64), TARGET).size == 0
    with pytest.raises(ValueError, match="-5"):
        assign_shards(np.array([-5]), TARGET)
    with pytest.raises(ValueError, match="1000"):
        assign_shards(np.array([2048]), 1000)
    with pytest.raises(ValueError, match="fill"):
        assign_shards(np.array([2048]), TARGET, fill=0.0)


def test_hash64_is_seeded_stable_and_independent_of_slicing() -> None:
    values = pa.array(["a", "b", "doc-1", "", None])
    h = hash64(values, 0)
    assert h[3] == h[4]  # null hashes like the empty value
    assert len(set(h[:4].tolist())) == 4
    assert not np.array_equal(h, hash64(values, 1))
    assert hash64(values.slice(2, 2), 0).tolist() == h[2:4].tolist()
    assert hash64(values.cast(pa.large_string()), 0).tolist() == h.tolist()
    assert hash64(pa.chunked_array([values[:2], values[2:]]), 0).tolist() == h.tolist()
    # pinned: the order of every dataset depends on these values staying the same
    assert hash64(pa.array(["a"]), 0)[0] == 18333067107861811135
    with pytest.raises(ValueError, match="int64"):
        hash64(pa.array([1, 2]), 0)


def test_order_hash_sorts_like_the_unsigned_hash() -> None:
    values = pa.array([f"d{i}" for i in range(1000)])
    assert np.array_equal(np.argsort(order_hash(values, 3)), np.argsort(hash64(values, 3)))


def test_runs_locate_every_document_including_deferred_ones() -> None:
    keys = np.array([-50, -20, -3, 0, 8, 40, 41], dtype=np.int64)
    shards = np.array([0, 0, 1, 0, 2, 1, 1])
    run_keys, run_shards = shard_runs(keys, shards)
    assert lookup_shards(keys, run_keys, run_shards).tolist() == shards.tolist()
    with pytest.raises(ValueError, match="-51"):
        lookup_shards(np.array([-51]), run_keys, run_shards)
    with pytest.raises(ValueError, match="not sorted"):
        shard_runs(keys[::-1], shards)


def test_plan_resolves_colliding_keys_by_doc_id_and_rejects_true_duplicates() -> None:
    h = np.array([1, 5, 5, 9], dtype=np.int64)
    assert collision_mask(h).tolist() == [False, True, True, False]
    sizes = np.array([40 * 1024, 30 * 1024, 2048, 2048], dtype=np.int64)
    plan = plan_dataset(h, sizes, (np.array([1, 2]), ["x", "y"], np.array([7, 7])),
                        target_bytes=TARGET, fill=0.99, lookahead=4)
    got = plan.shard_of(h, ["a", "x", "y", "b"], np.array([0, 7, 7, 0]))
    assert got.tolist() == [0, 1, 0, 0]
    assert plan.shard_samples.tolist() == [3, 1] and plan.first_index.tolist() == [0, 3]
    assert plan.shard_bytes.tolist() == [40 * 1024 + 4096 + 1024, 30 * 1024 + 1024]
    with pytest.raises(DuplicateSampleError, match="'x'"):
        plan_dataset(h, sizes, (np.array([1, 2]), ["x", "x"], np.array([7, 7])),
                     target_bytes=TARGET, fill=0.99, lookahead=4)


def test_bucket_groups_are_consecutive_and_hold_at_least_the_group_bytes() -> None:
    totals = np.array([5, 0, 3, 9, 0, 0, 1, 1, 2, 0], dtype=np.int64)
    groups = group_buckets(totals, 8)
    assert groups.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]  # the short rest (4 bytes) joins the last full group
    assert group_buckets(totals, 100).tolist() == [0] * 10
    assert group_buckets(totals, 1).tolist() == [0, 1, 1, 2, 3, 3, 3, 4, 5, 5]  # empty buckets join the next
    assert group_buckets(np.zeros(4, np.int64), 5).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="group_bytes"):
        group_buckets(totals, 0)
    with pytest.raises(ValueError, match="-1"):
        group_buckets(np.array([3, -1]), 2)


def test_group_plans_merge_into_one_plan_that_locates_every_document() -> None:
    rng = np.random.default_rng(5)
    h = np.sort(rng.integers(-(1 << 62), 1 << 62, 3000))
    sizes = (rng.integers(4, 9, h.size) * 512).astype(np.int64)  # 2-4 KiB samples in 64 KiB shards
    cut = [0, 1100, 1900, h.size]  # three groups of consecutive keys
    rows = []
    for g, (lo, hi) in enumerate(zip(cut[:-1], cut[1:], strict=True)):
        part = plan_dataset(h[lo:hi], sizes[lo:hi], (np.empty(0, np.int64), [], np.empty(0, np.int64)),
                            target_bytes=TARGET, fill=0.99, lookahead=64)
        rows.append(encode_group(g, part))
    plan = merge_plans(rows[::-1], TARGET)  # any order: merged by group id
    shard = plan.shard_of(h, [], np.zeros(h.size, np.int64))
    assert np.bincount(shard).tolist() == plan.shard_samples.tolist()  # every document in exactly one shard
    assert int(plan.shard_samples.sum()) == h.size
    totals = np.bincount(shard, weights=sizes).astype(np.int64) + 1024
    assert totals.tolist() == plan.shard_bytes.tolist() and (totals <= TARGET).all()
    # documents of a later group never share a shard with an earlier group's, and shards follow key order
    first_shard = [int(shard[lo]) for lo in cut[:-1]]
    assert all(shard[lo:hi].min() == first_shard[i] for i, (lo, hi) in enumerate(zip(cut[:-1], cut[1:], strict=True)))
    assert all(shard[cut[i + 1] - 1] < first_shard[i + 1] for i in range(2))
    assert plan.first_index.tolist() == np.r_[0, np.cumsum(plan.shard_samples)[:-1]].tolist()
    short = plan.shard_bytes < full_bytes(TARGET, 0.99)
    assert short.sum() == plan.short_shards(0.99) >= 3
    # the short shards are each group's last ones (its tail), every other shard is full
    ends = [*first_shard[1:], plan.n_shards]
    for lo, hi in zip(first_shard, ends, strict=True):
        tail = short[lo:hi]
        assert tail[-1] and not tail[: np.argmax(tail)].any() and tail[np.argmax(tail) :].all()
    assert full_bytes(TARGET, 0.99) == TARGET - 2048 + 1 and full_bytes(1 << 27, 0.99) == int(np.ceil(0.99 * (1 << 27)))


def test_a_duplicate_found_by_a_group_is_raised_by_the_merge() -> None:
    ok = encode_group(0, plan_dataset(np.array([3], np.int64), np.array([2048], np.int64),
                                      (np.empty(0, np.int64), [], np.empty(0, np.int64)),
                                      target_bytes=TARGET, fill=0.99, lookahead=4))
    bad = encode_group(1, None, duplicate="doc_id 'x' appears twice with identical tokens and source")
    with pytest.raises(DuplicateSampleError, match="'x'"):
        merge_plans([ok, bad], TARGET)
    h = np.array([1, 5, 5, 9], dtype=np.int64)
    sizes = np.array([40 * 1024, 30 * 1024, 2048, 2048], dtype=np.int64)
    collided = plan_dataset(h, sizes, (np.array([1, 2]), ["x", "y"], np.array([7, 7])),
                            target_bytes=TARGET, fill=0.99, lookahead=4)
    merged = merge_plans([ok, {**encode_group(1, collided), "group": 1}], TARGET)
    assert merged.shard_of(h, ["a", "x", "y", "b"], np.array([0, 7, 7, 0])).tolist() == [1, 2, 1, 1]


def test_few_samples_are_packed_by_the_interpreted_loop_as_by_the_compiled_one() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 50, 2000):
        sizes = rng.integers(MIN_SAMPLE_NBYTES, TARGET // 3, n).astype(np.int64)
        sizes[rng.integers(0, n, max(1, n // 100))] = 2 * TARGET  # oversized samples get shards of their own
        assert n <= INTERPRETED_SAMPLES
        for fill, lookahead in ((0.98, 1024), (0.99, 1), (0.5, 8)):
            capacity, low = TARGET - END_NBYTES, full_bytes(TARGET, fill) - END_NBYTES
            compiled = _assign(sizes, capacity, low, lookahead)
            assert compiled.tolist() == assign_shards(sizes, TARGET, fill=fill, lookahead=lookahead).tolist()
