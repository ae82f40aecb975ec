"""Errors of the shard packages (the manifest model and the streaming loader). Both are TokenmillErrors (the
CLI's one-line message and exit code, docs/errors.md) and ValueErrors (they describe bad input data, and code
catching ValueError keeps working). pipelines.errors imports only the standard library, so neither pulls in
the lake."""

from __future__ import annotations

from pipelines.errors import TokenmillError


class ManifestError(TokenmillError, ValueError):
    """A shard manifest is missing, malformed, or inconsistent with its shards or with other sources."""

    exit_code = 11


class CorruptShardError(TokenmillError, ValueError):
    """A shard (or its index) fails its checksum or its tar layout check. The message names the shard.

    ``CorruptShardError(message)`` with one argument keeps ``message`` whole: that is how a DataLoader
    worker's error is raised again in the main process (``exc_type(text)``), where ``shard`` then holds
    the full text, which still names the shard."""

    exit_code = 12

    def __init__(self, shard: str, reason: str | None = None) -> None:
        super().__init__(shard if reason is None else f"corrupt shard {shard}: {reason}")
        self.shard = shard
        self.reason = reason
