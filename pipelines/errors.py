"""Every tokenmill domain error derives from `TokenmillError`; the CLI prints one as one line and exits with its
`exit_code` (the table is in docs/errors.md). This module imports nothing but the standard library, so the
loader and dedup derive their own errors from it (dedup.errors, sharding.errors) without pulling in
Spark, pyiceberg or torch. Exit codes are distinct; tests/unit/pipelines/test_errors.py checks that."""

from __future__ import annotations

import re


class TokenmillError(Exception):
    """Base of all tokenmill errors; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(TokenmillError):
    """The config file or an override is invalid; the message names the key."""

    exit_code = 2


class MissingDependencyError(TokenmillError):
    """Something the machine must provide is missing (Java, a tokenizer file)."""

    exit_code = 3


class AuditError(TokenmillError):
    """Counts do not conserve or a shard checksum does not match."""

    exit_code = 4


class StageInputError(TokenmillError):
    """A stage's input table is missing or empty where it must not be."""

    exit_code = 5


class VersionError(TokenmillError):
    """A dataset version is unknown, already exists, or its pinned shards no longer match its record."""

    exit_code = 6


class MonitorError(TokenmillError):
    """A data-quality check between versions failed under --strict."""

    exit_code = 7


class LineageError(TokenmillError):
    """A document, shard or member asked about cannot be found in the lake."""

    exit_code = 8


class StageOutputError(TokenmillError):
    """A stage wrote other counts than it planned or read (documents, decisions, shards); nothing was committed."""

    exit_code = 10


class StorageError(TokenmillError, ValueError):
    """A URI that no storage backend serves (unknown scheme, s3:// without a bucket, a remote file:// host)."""

    exit_code = 13


class GcError(TokenmillError):
    """`tokenmill gc` cannot read a manifest it must keep, so it removes nothing."""

    exit_code = 17


_ERROR_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception|Exit)): (.*)$")


def worker_error(exc: BaseException) -> str:
    """The innermost `SomeError: message` line of a failed task's Python traceback, as one line (the
    whole message when it holds none).

    >>> worker_error(RuntimeError("Traceback ...\\n  File x\\nOSError: [Errno 28] no space left on device: /l"))
    'OSError: [Errno 28] no space left on device: /l'
    """
    text = str(exc)
    found = [m for line in text.splitlines() if (m := _ERROR_LINE.match(line.strip()))]
    if found:
        return f"{found[-1].group(1)}: {found[-1].group(2)}"[:500]
    return " ".join(text.split())[:500]
