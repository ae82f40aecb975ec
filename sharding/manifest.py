"""The dataset manifest (`manifest.json`, format "tokenmill-shards/1"): what the loader and `audit` read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sharding.writer import ShardStats

FORMAT = "tokenmill-shards/1"
MANIFEST_NAME = "manifest.json"
TOKEN_DTYPES = ("uint16", "uint32")


def shard_name(shard_index: int) -> str:
    """`shard-000042.tar`."""
    if shard_index < 0:
        raise ValueError(f"shard index must be >= 0, got {shard_index}")
    return f"shard-{shard_index:06d}.tar"


def index_name(shard_index: int) -> str:
    """`shard-000042.idx.npy`."""
    return shard_name(shard_index).removesuffix(".tar") + ".idx.npy"


def build_manifest(
    shards: Sequence[ShardStats],
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
        raise ValueError(f"token_dtype must be one of {TOKEN_DTYPES}, got {token_dtype!r}")
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


def parse_manifest(data: bytes) -> dict[str, Any]:
    """Parse and check a manifest; ValueError naming what is wrong (format, counts that do not add up)."""
    m = json.loads(data)
    if m.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} manifest: format={m.get('format')!r}")
    if m["token_dtype"] not in TOKEN_DTYPES:
        raise ValueError(f"manifest token_dtype {m['token_dtype']!r} is not one of {TOKEN_DTYPES}")
    for key, field in (("n_samples", "n_samples"), ("n_tokens", "n_tokens"), ("total_bytes", "bytes")):
        total = sum(s[field] for s in m["shards"])
        if total != m[key]:
            raise ValueError(f"manifest {key}={m[key]} but its shards sum to {total}")
    if m["n_shards"] != len(m["shards"]):
        raise ValueError(f"manifest n_shards={m['n_shards']} but lists {len(m['shards'])} shards")
    return m
