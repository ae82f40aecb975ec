"""The dataset manifest (`manifest.json`, format "tokenmill-shards/1"), writer side: the format string, the
token dtypes and the shard names (defined here only), building the document and its canonical bytes. Reading
it back is `sharding.format.model` (parse, validate, read)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

FORMAT = "tokenmill-shards/1"
MANIFEST_NAME = "manifest.json"
TOKEN_DTYPES: dict[str, np.dtype[Any]] = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}


class ShardRecord(Protocol):
    """What the manifest records about one written shard (sharding.write.writer.ShardStats is one)."""

    shard_index: int
    bytes: int
    n_samples: int
    n_tokens: int
    sha256: str
    index_sha256: str


def shard_name(shard_index: int) -> str:
    """`shard-000042.tar`."""
    if shard_index < 0:
        raise ValueError(f"shard index must be >= 0, got {shard_index}")
    return f"shard-{shard_index:06d}.tar"


def index_name(shard_index: int) -> str:
    """`shard-000042.idx.npy`."""
    return shard_name(shard_index).removesuffix(".tar") + ".idx.npy"


def build_manifest(
    shards: Sequence[ShardRecord],
    *,
    token_dtype: str,
    eod_id: int,
    vocab_size: int,
    tokenizer_sha256: str,
    target_bytes: int,
    params_hash: str,
) -> dict[str, Any]:
    """The manifest dict; `shards` must be numbered 0..n-1 (ValueError naming the first gap)."""
    if token_dtype not in TOKEN_DTYPES:
        raise ValueError(f"token_dtype must be one of {tuple(TOKEN_DTYPES)}, got {token_dtype!r}")
    ordered = sorted(shards, key=lambda s: s.shard_index)
    for expected, s in enumerate(ordered):
        if s.shard_index != expected:
            raise ValueError(f"shard {expected} is missing (next is {s.shard_index})")
    return {
        "format": FORMAT,
        "token_dtype": token_dtype,
        "eod_id": int(eod_id),
        "vocab_size": int(vocab_size),
        "tokenizer_sha256": tokenizer_sha256,
        "target_bytes": int(target_bytes),
        "n_shards": len(ordered),
        "n_samples": sum(s.n_samples for s in ordered),
        "n_tokens": sum(s.n_tokens for s in ordered),
        "total_bytes": sum(s.bytes for s in ordered),
        "params_hash": params_hash,
        "shards": [
            {
                "path": shard_name(s.shard_index),
                "index": index_name(s.shard_index),
                "bytes": s.bytes,
                "n_samples": s.n_samples,
                "n_tokens": s.n_tokens,
                "sha256": s.sha256,
                "index_sha256": s.index_sha256,
            }
            for s in ordered
        ],
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Canonical bytes: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode("utf-8")
