"""Publishing shards as immutable snapshots: run-scoped object names, manifests that extend the previous one,
and the `shards` table commit that makes a manifest current.

Layout under `shard.output` (default `<lake.root>/shards`), local or S3 alike:

    runs/<stamp>-<run>/shard-000000.tar, shard-000000.idx.npy, ...   written once by one shard run, never rewritten
    manifest-<stamp>-<run>.json                                       one per published run, never rewritten
    manifest.json                                                     a copy of the current manifest (convenience)

A manifest lists shard paths relative to its own folder, so an incremental run's manifest names the earlier
runs' shards plus its own. The shards table's snapshot is the publication: its summary records the manifest
URI and sha256, the tokens snapshot consumed and the stage params; `tokenmill gc` removes objects that no
kept manifest references.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from pipelines import lake
from pipelines.config import Config
from pipelines.lake.summary import MANIFEST_SHA256, MANIFEST_URI, TOKENIZER_SHA256
from pipelines.storage import S3Options
from schemas.shards import TABLE as SHARDS
from sharding.format.manifest import MANIFEST_NAME, manifest_bytes
from sharding.format.model import parse_manifest
from sharding.write.sinks import read_object, write_object

log = logging.getLogger(__name__)

RUNS_DIR = "runs"


def run_stamp(run_id: str, now: datetime | None = None) -> str:
    """`20261130T101500Z-1a2b3c4d`: sorts by time, unique per run."""
    return f"{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}-{run_id[:8]}"


def run_dir(stamp: str) -> str:
    return f"{RUNS_DIR}/{stamp}"


def manifest_name(stamp: str) -> str:
    return f"manifest-{stamp}.json"


def prefixed(manifest: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The manifest with every shard and index path placed under `prefix/`."""
    shards = [{**e, "path": f"{prefix}/{e['path']}", "index": f"{prefix}/{e['index']}"} for e in manifest["shards"]]
    return {**manifest, "shards": shards}


def extend_manifest(previous: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """`new` (its shards already prefixed) listed after the shards of `previous`, totals summed.

    ValueError when the two disagree on the token stream (dtype, EOD id, vocab, tokenizer) or name a shard twice.
    """
    if previous is None:
        return new
    for key in ("format", "token_dtype", "eod_id", "vocab_size", "tokenizer_sha256"):
        if previous.get(key) != new.get(key):
            raise ValueError(f"cannot extend a manifest with {key}={previous.get(key)!r} by one with {new.get(key)!r}")
    shards = [*previous["shards"], *new["shards"]]
    paths = [e["path"] for e in shards]
    if len(set(paths)) != len(paths):
        raise ValueError("a shard path appears twice in the extended manifest")
    return {
        **new,
        "n_shards": len(shards),
        "n_samples": sum(int(e["n_samples"]) for e in shards),
        "n_tokens": sum(int(e["n_tokens"]) for e in shards),
        "total_bytes": sum(int(e["bytes"]) for e in shards),
        "shards": shards,
    }


def manifest_relpath(out: str, uri: str) -> str | None:
    """`uri`'s name relative to the shard folder `out` (None when it lies elsewhere)."""
    base = out.rstrip("/") + "/"
    for candidate in (uri, uri.removeprefix("file://")):
        if candidate.startswith(base):
            return candidate[len(base):]
    return None


def read_published(uri: str, sha256: str | None, s3: S3Options | None) -> dict[str, Any] | None:
    """The manifest at `uri` when it exists, parses and (when given) has that sha256; else None."""
    folder, _, name = uri.rpartition("/")
    try:
        blob = read_object(folder, name, s3=s3)
    except (FileNotFoundError, OSError, Exception):  # boto3's NoSuchKey is no OSError
        log.warning("cannot read the previous manifest %s", uri)
        return None
    if sha256 and hashlib.sha256(blob).hexdigest() != sha256:
        log.warning("the previous manifest %s changed since it was published", uri)
        return None
    try:
        parse_manifest(blob, uri)  # the loader's checks: format, dtype, counts that add up
        manifest: dict[str, Any] = json.loads(blob)
    except ValueError as exc:  # ManifestError is a ValueError
        log.warning("the previous manifest %s is not valid: %s", uri, exc)
        return None
    return manifest


def publish(cfg: Config, catalog: Any, run_id: str, out: str, stamp: str, manifest: dict[str, Any],
            summary_extra: dict[str, str]) -> tuple[str, int | None]:
    """Write the manifest under its own new name, commit the shards table (the publication), then refresh
    the `manifest.json` copy. Returns (manifest URI, shards snapshot id)."""
    from pipelines.sources.failpoints import failpoint

    blob = manifest_bytes(manifest)
    name = manifest_name(stamp)
    s3 = cfg.shard.s3_options()
    write_object(out, name, blob, s3=s3)
    uri = f"{out}/{name}"
    failpoint("shard.before_commit")
    snapshot = _commit_shards_table(catalog, cfg, run_id, manifest, out, uri, blob, summary_extra)
    write_object(out, MANIFEST_NAME, blob, s3=s3)
    return uri, snapshot


def refresh_alias(out: str, uri: str, s3: S3Options | None) -> None:
    """Make `manifest.json` a copy of the published manifest at `uri` again (after a run stopped between its
    commit and the copy)."""
    folder, _, name = uri.rpartition("/")
    try:
        blob = read_object(folder, name, s3=s3)
        current = read_object(out, MANIFEST_NAME, s3=s3)
    except Exception:  # a missing alias is rewritten below; a missing manifest is gc's and audit's business
        current = b""
        try:
            blob = read_object(folder, name, s3=s3)
        except Exception:
            return
    if current != blob:
        write_object(out, MANIFEST_NAME, blob, s3=s3)


def _commit_shards_table(catalog: Any, cfg: Config, run_id: str, manifest: dict[str, Any], out: str,
                         manifest_uri: str, blob: bytes, extra: dict[str, str]) -> int | None:
    table = lake.ensure_table(catalog, cfg.lake.namespace, SHARDS)
    entries = manifest["shards"]
    rows = pa.Table.from_pydict(
        {
            "shard_index": list(range(len(entries))),
            "path": [e["path"] for e in entries],
            "uri": [f"{out}/{e['path']}" for e in entries],
            "bytes": [e["bytes"] for e in entries],
            "n_samples": [e["n_samples"] for e in entries],
            "n_tokens": [e["n_tokens"] for e in entries],
            "sha256": [e["sha256"] for e in entries],
            "manifest_uri": [manifest_uri] * len(entries),
        },
        schema=lake.file_schema(table, SHARDS.arrow_schema),
    )
    path = lake.write_data_file(lake.data_dir(table), rows, prefix=f"shards-{run_id[:8]}", s3=lake.table_s3(table))
    summary = lake.snapshot_summary(cfg, "shard", run_id, {
        MANIFEST_URI: manifest_uri,
        MANIFEST_SHA256: hashlib.sha256(blob).hexdigest(),
        TOKENIZER_SHA256: manifest["tokenizer_sha256"],
        **extra,
    })
    return lake.commit_files(table, [path] if path else [], summary, overwrite=True)


def published_manifests(table: Any) -> list[tuple[int, str]]:
    """(snapshot id, manifest URI) of the shards table's publications, newest first, one per manifest (an
    overwrite commits a delete and an append snapshot, both naming the manifest)."""
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    for snap in sorted(table.snapshots(), key=lambda s: (s.timestamp_ms, s.sequence_number or 0), reverse=True):
        uri = snap.summary.additional_properties.get(MANIFEST_URI) if snap.summary is not None else None
        if uri and uri not in seen:
            seen.add(uri)
            out.append((snap.snapshot_id, uri))
    return out
