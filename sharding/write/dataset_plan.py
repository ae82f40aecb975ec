"""The plan of a shard run, built in bucket groups on the executors and merged on the driver, and the per-batch
computations tasks make (sample sizes, order keys, the shard each document goes to).

Order key of a document: (h, doc_id, ch) where h = seeded 64-bit hash of doc_id and ch a 64-bit hash of its
tokens and source, so two documents sharing a doc_id still order the same way on every run. Only documents
whose h collides need doc_id/ch in the plan; everything else is located by h alone.

Distributed plan (driver memory independent of the corpus): documents fall into 2**BUCKET_BITS hash-prefix
buckets, ordered like the keys. The driver sees one byte total per bucket and cuts the buckets into groups of
consecutive buckets (`group_buckets`); each group is packed on an executor (`plan_dataset` over the group's
documents in key order) and sends back its shard runs, per-shard counts and collided keys (`encode_group`),
which the driver concatenates in group order (`merge_plans`): O(shards) numbers, not O(documents). Groups
depend only on the bucket totals and the settings, so the shards do not depend on Spark's partitioning. Each
group closes with its own partly filled shard(s): the shards under `fill * target_bytes` are its tails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sharding.format.tar import END_NBYTES, sample_json, sample_nbytes
from sharding.write.plan import assign_shards, full_bytes, hash64, lookup_shards, order_hash, shard_runs

BUCKET_BITS = 16  # 65536 hash-prefix buckets: all documents sharing an h land in one bucket
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def content_hash(tokens: pa.Array, sources: pa.Array, seed: int) -> np.ndarray:
    """int64 hash of each document's tokens bytes and source, the last tie-break of the order key."""
    with np.errstate(over="ignore"):
        mixed = hash64(tokens, seed) ^ (hash64(sources, seed) * _GOLDEN)
    return mixed.view(np.int64)


def bucket_of(h: np.ndarray) -> np.ndarray:
    """Hash-prefix bucket of int64 order keys; buckets are ordered like the keys."""
    return ((h.view(np.uint64) ^ np.uint64(1 << 63)) >> np.uint64(64 - BUCKET_BITS)).astype(np.int32)


def json_members(doc_ids: pa.Array, n_tokens: pa.Array, sources: pa.Array) -> list[bytes]:
    """The `.json` member bytes of each sample."""
    return [
        sample_json(d, n, s)
        for d, n, s in zip(doc_ids.to_pylist(), n_tokens.to_pylist(), sources.to_pylist(), strict=True)
    ]


def sample_sizes(doc_ids: pa.Array, tokens: pa.Array, n_tokens: pa.Array, sources: pa.Array) -> np.ndarray:
    """Archive bytes of each document's sample (headers and padding included), int64."""
    tok_nbytes = pc.fill_null(pc.binary_length(tokens), 0).to_numpy(zero_copy_only=False)
    js = np.fromiter(map(len, json_members(doc_ids, n_tokens, sources)), dtype=np.int64, count=len(doc_ids))
    return sample_nbytes(tok_nbytes, js)


def order_keys(
    doc_ids: pa.Array, tokens: pa.Array, sources: pa.Array, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(h, ch) int64 order keys of each document."""
    return order_hash(doc_ids, seed), content_hash(tokens, sources, seed)


def collision_mask(h: np.ndarray) -> np.ndarray:
    """True where a sorted key array holds a value that also appears at a neighbouring position."""
    same = h[1:] == h[:-1]
    mask = np.zeros(h.size, dtype=bool)
    mask[1:] |= same
    mask[:-1] |= same
    return mask


@dataclass
class DatasetPlan:
    """Where every document goes: shard runs by key, collided keys by full key, and per-shard expectations."""

    target_bytes: int
    run_keys: np.ndarray
    run_shards: np.ndarray
    collided: dict[tuple[int, str, int], int]
    first_index: np.ndarray  # global sample index of each shard's first sample
    shard_samples: np.ndarray
    shard_bytes: np.ndarray  # planned archive bytes, end blocks included
    oversized: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # shard ids of lone giants

    @property
    def n_shards(self) -> int:
        return int(self.shard_samples.size)

    def short_shards(self, fill: float) -> int:
        """Shards closed before they were full (under `plan.full_bytes`, about ``fill * target_bytes``) that
        hold no oversized document: the tails of the bucket groups, each group's last shard(s) of documents
        that no longer fit together."""
        short = self.shard_bytes < full_bytes(self.target_bytes, fill)
        short[self.oversized] = False
        return int(short.sum())

    def shard_of(self, h: np.ndarray, doc_ids: list[str], ch: np.ndarray) -> np.ndarray:
        """Shard id of each document (int32) from its order key."""
        out = lookup_shards(h, self.run_keys, self.run_shards) if h.size else np.empty(0, np.int64)
        if self.collided:
            for i in np.flatnonzero(np.isin(h, np.fromiter((k[0] for k in self.collided), np.int64))):
                out[i] = self.collided[(int(h[i]), doc_ids[i], int(ch[i]))]
        return out.astype(np.int32)


class DuplicateSampleError(ValueError):
    """Two documents share doc_id, tokens and source: their order, and so the shards, would be ambiguous."""


def plan_dataset(
    h: np.ndarray,
    sizes: np.ndarray,
    collisions: tuple[np.ndarray, list[str], np.ndarray],
    *,
    target_bytes: int,
    fill: float,
    lookahead: int,
) -> DatasetPlan:
    """Pack documents given in key order (`h` sorted int64 keys, `sizes` their sample bytes) into shards.
    Dataset order is by shard id, then key (see `plan.dataset_order`), so a shard's samples are its
    documents in key order and the first gets global index `first_index[shard]`.

    `collisions` = (positions, doc_ids, ch) of the documents whose h is shared, in key order.
    DuplicateSampleError when two of them have the same full key.
    """
    shard_ids = assign_shards(sizes, target_bytes, fill=fill, lookahead=lookahead)
    n_shards = int(shard_ids.max()) + 1 if shard_ids.size else 0
    pos, c_doc_ids, c_ch = collisions
    collided: dict[tuple[int, str, int], int] = {}
    for p, d, c in zip(pos.tolist(), c_doc_ids, c_ch.tolist(), strict=True):
        key = (int(h[p]), d, int(c))
        if key in collided:
            raise DuplicateSampleError(f"doc_id {d!r} appears twice with identical tokens and source")
        collided[key] = int(shard_ids[p])
    run_keys, run_shards = shard_runs(h, shard_ids)
    counts = np.bincount(shard_ids, minlength=n_shards)
    nbytes = np.bincount(shard_ids, weights=sizes, minlength=n_shards).astype(np.int64) + END_NBYTES
    first = np.zeros(n_shards, dtype=np.int64)
    first[1:] = np.cumsum(counts)[:-1]
    capacity = target_bytes - END_NBYTES
    big = np.unique(shard_ids[sizes > capacity]) if sizes.size else np.empty(0, np.int64)
    return DatasetPlan(
        target_bytes=target_bytes,
        run_keys=run_keys,
        run_shards=run_shards,
        collided=collided,
        first_index=first,
        shard_samples=counts,
        shard_bytes=nbytes,
        oversized=big,
    )


def group_buckets(bucket_bytes: np.ndarray, group_bytes: int) -> np.ndarray:
    """Bucket group of each hash-prefix bucket (int32, ids 0..g-1 rising with the bucket index): consecutive
    buckets join a group until it holds at least ``group_bytes`` sample bytes; buckets after the last full
    group join it (one group when the whole run is smaller). A function of the bucket totals alone.
    ValueError for ``group_bytes`` < 1 or a negative total."""
    totals = np.asarray(bucket_bytes, dtype=np.int64)
    if group_bytes < 1:
        raise ValueError(f"group_bytes must be >= 1, got {group_bytes}")
    if totals.size and totals.min() < 0:
        raise ValueError(f"bucket totals must be >= 0, got {int(totals.min())}")
    # bucket i closes a group when the bytes since the last close reach group_bytes
    out = np.empty(totals.size, dtype=np.int32)
    group, acc = 0, 0
    for i, nbytes in enumerate(totals.tolist()):
        out[i] = group
        acc += nbytes
        if acc >= group_bytes:
            group, acc = group + 1, 0
    if group > 0:
        out[out == group] = group - 1  # a short remainder (or empty buckets) joins the last full group
    return out


_INT64_FIELDS = ("run_keys", "run_shards", "shard_samples", "shard_bytes", "oversized", "coll_h", "coll_ch",
                 "coll_shard")


def encode_group(group: int, plan: DatasetPlan | None, duplicate: str = "") -> dict[str, Any]:
    """One bucket group's plan as a row of raw int64 bytes (what an executor sends to the driver): its shard
    runs and per-shard counts with group-local shard ids, and its collided keys. ``duplicate`` carries a
    DuplicateSampleError's message instead of a plan (raised again on the driver, see `merge_plans`)."""
    if plan is None:
        row: dict[str, Any] = {k: b"" for k in _INT64_FIELDS}
        return {"group": group, **row, "coll_doc_ids": [], "duplicate": duplicate}
    keys = list(plan.collided)
    coll = {
        "coll_h": np.array([k[0] for k in keys], np.int64),
        "coll_ch": np.array([k[2] for k in keys], np.int64),
        "coll_shard": np.array([plan.collided[k] for k in keys], np.int64),
    }
    arrays = {
        "run_keys": plan.run_keys, "run_shards": plan.run_shards, "shard_samples": plan.shard_samples,
        "shard_bytes": plan.shard_bytes, "oversized": plan.oversized, **coll,
    }
    row = {k: np.ascontiguousarray(arrays[k], dtype=np.int64).tobytes() for k in _INT64_FIELDS}
    return {"group": group, **row, "coll_doc_ids": [k[1] for k in keys], "duplicate": duplicate}


def merge_plans(rows: Sequence[dict[str, Any]], target_bytes: int) -> DatasetPlan:
    """The run's plan from its groups' rows (`encode_group`, any order): groups in id order, each one's shard
    ids shifted past the shards of the groups before it, so dataset order is (group, shard in group, key)
    and the run keys stay sorted. Raises DuplicateSampleError when a group found a duplicate sample."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _INT64_FIELDS}
    coll_ids: list[str] = []
    offset = 0
    for row in sorted(rows, key=lambda r: int(r["group"])):
        if row["duplicate"]:
            raise DuplicateSampleError(row["duplicate"])
        arrays = {k: np.frombuffer(row[k], dtype=np.int64) for k in _INT64_FIELDS}
        for k in ("run_shards", "oversized", "coll_shard"):
            arrays[k] = arrays[k] + offset
        for k, a in arrays.items():
            parts[k].append(a)
        coll_ids += list(row["coll_doc_ids"])
        offset += arrays["shard_samples"].size
    cat = {k: np.concatenate(v) if v else np.empty(0, np.int64) for k, v in parts.items()}
    counts = cat["shard_samples"]
    first = np.zeros(counts.size, dtype=np.int64)
    first[1:] = np.cumsum(counts)[:-1]
    collided = {
        (int(h), d, int(c)): int(sh)
        for h, d, c, sh in zip(cat["coll_h"], coll_ids, cat["coll_ch"], cat["coll_shard"], strict=True)
    }
    return DatasetPlan(
        target_bytes=target_bytes,
        run_keys=cat["run_keys"],
        run_shards=cat["run_shards"],
        collided=collided,
        first_index=first,
        shard_samples=counts,
        shard_bytes=cat["shard_bytes"],
        oversized=cat["oversized"],
    )
