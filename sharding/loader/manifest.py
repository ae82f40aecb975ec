"""The loader's side of the manifest: how it reaches s3:// sources (RemoteOptions), reading a source's
manifest through the one manifest model (sharding.format), and checking that mixed sources agree."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from pipelines.storage import S3Options, is_s3, normalize_uri
from sharding.errors import ManifestError
from sharding.format import ShardManifest
from sharding.format import read_manifest as read_manifest_file

__all__ = ["RemoteOptions", "ShardManifest", "check_compatible", "is_remote", "read_manifest", "s3_path"]

log = logging.getLogger(__name__)


class RemoteOptions(S3Options):
    """How the loader reaches s3:// sources: the S3 settings of `pipelines.storage.S3Options`
    (``endpoint`` such as ``http://127.0.0.1:9000``, scheme optional, https by default; region and
    credentials from the usual AWS environment unless given) plus the shard cache: ``cache_dir`` holds
    fetched shards (default: a folder under the system temp dir) and is bounded by
    ``cache_limit_bytes`` (LRU); ``prefetch_shards`` shards ahead of the reader are fetched in the
    background. ``extra`` holds more ``pyarrow.fs.S3FileSystem`` arguments, passed as they are."""

    cache_dir: str | None = None
    cache_limit_bytes: int = Field(default=16 * 1024**3, ge=0)
    prefetch_shards: int = Field(default=4, ge=0)
    extra: dict[str, Any] = Field(default_factory=dict)


def is_remote(uri: str) -> bool:
    return is_s3(uri)


def s3_path(uri: str) -> str:
    """``s3://bucket/key`` -> ``bucket/key`` (pyarrow's path form)."""
    return normalize_uri(uri).removeprefix("s3://")


def read_manifest(uri: str, remote: RemoteOptions | None = None) -> ShardManifest:
    """The manifest of a loader source: a local path or ``file://`` URI (a file, or a folder holding
    manifest.json) or an ``s3://`` URI. Raises ManifestError when it is missing, invalid or lists no
    shards (nothing to load)."""
    manifest = read_manifest_file(uri, remote or RemoteOptions())
    if manifest.n_shards == 0:
        raise ManifestError(f"{manifest.uri}: no shards")
    return manifest


def check_compatible(manifests: list[ShardManifest]) -> None:
    """Sources mixed in one loader must share a tokenizer (hence vocabulary and EOD id). Raises
    ManifestError naming both manifests otherwise."""
    first = manifests[0]
    for m in manifests[1:]:
        for attr in ("tokenizer_sha256", "eod_id", "vocab_size"):
            if getattr(m, attr) != getattr(first, attr):
                raise ManifestError(
                    f"cannot mix {first.uri} and {m.uri}: {attr} differs "
                    f"({getattr(first, attr)!r} vs {getattr(m, attr)!r})"
                )
