"""Pure planning kernels of the shard stage: the seeded document order, packing samples into shards by
size, and the compact lookup that tells a Spark task which shard a document belongs to.

Order: documents sort by (hash64(doc_id, seed), doc_id, content hash), independent of partitioning.
Packing (`assign_shards`) walks that order and fills each shard up to the target, counting tar headers,
padding and the end-of-archive blocks; a sample that does not fit is deferred to the next shard while later,
smaller samples fill the gap, so shards come out full. The dataset order is then (shard id, order position).
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from sharding.format.tar import BLOCK, END_NBYTES

MIN_SAMPLE_NBYTES = 4 * BLOCK
# `assign_shards` packs at most this many samples with the interpreted loop (see there)
INTERPRETED_SAMPLES = 20_000

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)


@numba.njit(cache=True)
def _splitmix64(x: np.uint64) -> np.uint64:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True)
def _hash_ranges(data: np.ndarray, offsets: np.ndarray, seed: np.uint64) -> np.ndarray:
    n = offsets.size - 1
    out = np.empty(n, dtype=np.uint64)
    start_state = _splitmix64(seed) ^ np.uint64(0xCBF29CE484222325)
    prime = np.uint64(0x100000001B3)
    for i in range(n):
        h = start_state
        for k in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[k])) * prime
        out[i] = _splitmix64(h ^ np.uint64(offsets[i + 1] - offsets[i]))
    return out


def hash64(values: pa.Array, seed: int) -> np.ndarray:
    """A seeded 64-bit hash (FNV-1a over the bytes, splitmix64 finalizer) of each string/binary value.

    Same value and seed give the same hash on any machine; nulls hash like the empty value.
    ValueError for an array that is not string/binary or a seed outside 0..2**64-1.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (
        pa.types.is_string(values.type)
        or pa.types.is_large_string(values.type)
        or pa.types.is_binary(values.type)
        or pa.types.is_large_binary(values.type)
    ):
        raise ValueError(f"hash64 takes string or binary arrays, got {values.type}")
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed {seed} is outside 0..2**64-1")
    large = pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type)
    buffers = values.buffers()
    off_dtype = np.int64 if large else np.int32
    offsets = np.frombuffer(buffers[1], dtype=off_dtype)[values.offset : values.offset + len(values) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.empty(0, np.uint8)
    out = _hash_ranges(data, offsets.astype(np.int64), np.uint64(seed))
    if values.null_count:
        out[np.asarray(values.is_null())] = _hash_ranges(
            np.empty(0, np.uint8), np.zeros(2, np.int64), np.uint64(seed)
        )[0]
    return out


def order_hash(doc_ids: pa.Array, seed: int) -> np.ndarray:
    """The sort key of each document for dataset order, as int64 (the uint64 hash shifted by 2**63 so
    signed comparison, as in Spark, orders like the unsigned hash)."""
    return (hash64(doc_ids, seed) ^ np.uint64(1 << 63)).view(np.int64)


@numba.njit(cache=True)
def _assign(sizes: np.ndarray, capacity: int, low: int, lookahead: int) -> np.ndarray:
    n = sizes.size
    out = np.full(n, -1, dtype=np.int64)
    pend = np.empty(lookahead + 1, dtype=np.int64)
    keep = np.empty(lookahead + 1, dtype=np.int64)
    over = np.empty(n, dtype=np.int64)
    npend = 0
    shard = 0
    i = 0
    while i < n or npend > 0:
        fill = 0
        count = 0
        nkeep = 0
        for j in range(npend):
            d = pend[j]
            if fill + sizes[d] <= capacity:
                out[d] = shard
                fill += sizes[d]
                count += 1
            else:
                keep[nkeep] = d
                nkeep += 1
        for j in range(nkeep):
            pend[j] = keep[j]
        npend = nkeep
        nover = 0
        while i < n and fill < low:
            d = i
            i += 1
            if sizes[d] > capacity:
                over[nover] = d
                nover += 1
            elif fill + sizes[d] <= capacity:
                out[d] = shard
                fill += sizes[d]
                count += 1
            else:
                pend[npend] = d
                npend += 1
                if npend >= lookahead:
                    break
        if count > 0:
            shard += 1
        for k in range(nover):
            out[over[k]] = shard
            shard += 1
    return out


def assign_shards(
    sample_bytes: np.ndarray, target_bytes: int, *, fill: float = 0.98, lookahead: int = 1024
) -> np.ndarray:
    """Shard id of each sample (int64, ids 0..k-1 with no gaps), samples given in dataset-order candidates.

    `sample_bytes` are archive sizes (see `tarformat.sample_nbytes`). A shard is closed once it holds at
    least `fill * target_bytes` counting the two end blocks, and never passes `target_bytes`. A sample that
    does not fit the open shard waits (at most `lookahead` of them) and goes first into the next shard,
    while later samples fill the gap. A sample larger than a shard can hold gets a shard of its own, numbered
    right after the shard that was open when it was met. The final order is a stable sort by shard id.

    Invariants: every sample gets exactly one shard; a shard of two or more samples is <= target_bytes; all
    shards but the last few (when only samples that no longer fit together remain) are >= fill * target.
    ValueError for a negative size, target_bytes < 2048, fill outside (0, 1] or lookahead < 1.
    """
    sizes = np.ascontiguousarray(sample_bytes, dtype=np.int64)
    if sizes.ndim != 1:
        raise ValueError(f"sample_bytes must be 1-D, got shape {sizes.shape}")
    if sizes.size and sizes.min() < 0:
        raise ValueError(f"sample sizes must be >= 0, got {int(sizes.min())}")
    if target_bytes < 2048:
        raise ValueError(f"target_bytes must be >= 2048, got {target_bytes}")
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    if lookahead < 1:
        raise ValueError(f"lookahead must be >= 1, got {lookahead}")
    capacity = target_bytes - END_NBYTES
    # the same loop interpreted for a few samples (an increment planned on the driver): loading the compiled
    # kernel costs a process that has not used numba yet more than the loop itself
    kernel = _assign.py_func if sizes.size <= INTERPRETED_SAMPLES else _assign
    return kernel(sizes, capacity, full_bytes(target_bytes, fill) - END_NBYTES, lookahead)


def full_bytes(target_bytes: int, fill: float) -> int:
    """Archive bytes (end blocks included) at which `assign_shards` closes a shard: ``fill * target_bytes``,
    or less once less room is left than the smallest possible sample (two headers, two data blocks)."""
    return min(int(np.ceil(fill * target_bytes)), target_bytes - MIN_SAMPLE_NBYTES + 1)


def dataset_order(shard_ids: np.ndarray) -> np.ndarray:
    """Positions in dataset order: a stable argsort by shard id (within a shard, the candidate order)."""
    return np.argsort(shard_ids, kind="stable")


def shard_runs(sorted_keys: np.ndarray, shard_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compress the shard ids of documents in key order into runs: (first key of each run, its shard).

    `sorted_keys` must be non-decreasing (int64 order keys); a run starts wherever the shard id changes.
    A document whose key is unique belongs to `run_shard[searchsorted(run_keys, key, 'right') - 1]`.
    """
    keys = np.asarray(sorted_keys, dtype=np.int64)
    ids = np.asarray(shard_ids, dtype=np.int64)
    if keys.shape != ids.shape:
        raise ValueError(f"keys {keys.shape} and shard ids {ids.shape} differ in shape")
    if keys.size and (np.diff(keys) < 0).any():
        raise ValueError("sorted_keys is not sorted")
    if not keys.size:
        return keys, ids
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return keys[starts], ids[starts]


def lookup_shards(keys: np.ndarray, run_keys: np.ndarray, run_shards: np.ndarray) -> np.ndarray:
    """Shard of each document from its int64 order key and the runs of `shard_runs` (keys must be unique
    in the dataset; colliding keys are resolved by the caller). ValueError for a key before the first run."""
    keys = np.asarray(keys, dtype=np.int64)
    pos = np.searchsorted(run_keys, keys, side="right") - 1
    if keys.size and pos.min() < 0:
        raise ValueError(f"key {int(keys[pos.argmin()])} precedes every run")
    return run_shards[pos]
