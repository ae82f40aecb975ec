"""Token shards: the tar shard writer, shard index/manifest, pure shuffle/partition functions, and the
streaming loader. ``from sharding import TokenLoader`` does not import torch (the loader imports it
when iterated), so the writer side works without torch installed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sharding.loader import TokenLoader
    from sharding.loader_errors import CorruptShardError, ManifestError
    from sharding.loader_manifest import RemoteOptions

__all__ = ["TokenLoader", "RemoteOptions", "CorruptShardError", "ManifestError"]

_LAZY = {
    "TokenLoader": "sharding.loader",
    "RemoteOptions": "sharding.loader_manifest",
    "CorruptShardError": "sharding.loader_errors",
    "ManifestError": "sharding.loader_errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sharding' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
