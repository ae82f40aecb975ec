"""The plan of a shard run, built on the driver from per-document keys and sizes in dataset-key order, and
the per-batch computations tasks make (sample sizes, order keys, the shard each document goes to).

Order key of a document: (h, doc_id, ch) where h = seeded 64-bit hash of doc_id and ch a 64-bit hash of its
tokens and source, so two documents sharing a doc_id still order the same way on every run. Only documents
whose h collides need doc_id/ch on the driver; everything else is located by h alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sharding.format.tar import END_NBYTES, sample_json, sample_nbytes
from sharding.write.plan import assign_shards, hash64, lookup_shards, order_hash, shard_runs

BUCKET_BITS = 10  # 1024 hash-prefix buckets: all documents sharing an h land in one bucket
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
