"""Errors the streaming loader raises. Both derive from ValueError: they describe bad input data."""

from __future__ import annotations


class ManifestError(ValueError):
    """A shard manifest is missing, malformed, or inconsistent with its shards or with other sources."""


class CorruptShardError(ValueError):
    """A shard (or its index) fails its checksum or its tar layout check. The message names the shard.

    ``CorruptShardError(message)`` with one argument keeps ``message`` whole: that is how a DataLoader
    worker's error is raised again in the main process (``exc_type(text)``), where ``shard`` then holds
    the full text, which still names the shard."""

    def __init__(self, shard: str, reason: str | None = None) -> None:
        super().__init__(shard if reason is None else f"corrupt shard {shard}: {reason}")
        self.shard = shard
        self.reason = reason
