"""Token shards in three subpackages: `sharding.format` (the tar layout, the shard index and the one manifest
model), `sharding.write` (order, packing plan, sinks and the shard writer) and `sharding.loader` (the streaming
`TokenLoader`); `sharding.errors` holds the domain errors of all three. ``from sharding import TokenLoader``
imports nothing until the name is used, and never torch (the loader imports it when iterated), so the writer
side works without torch installed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sharding.errors import CorruptShardError, ManifestError
    from sharding.loader import TokenLoader
    from sharding.loader.manifest import RemoteOptions

__all__ = ["TokenLoader", "LoaderOptions", "RemoteOptions", "CorruptShardError", "ManifestError"]

_LAZY = {
    "TokenLoader": "sharding.loader",
    "LoaderOptions": "sharding.loader",
    "RemoteOptions": "sharding.loader",
    "CorruptShardError": "sharding.errors",
    "ManifestError": "sharding.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sharding' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
