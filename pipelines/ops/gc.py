"""`tokenmill gc`: remove shard objects nothing references, and expire old Iceberg snapshots.

Kept: every object that a kept manifest lists, and the kept manifests themselves. Kept manifests are the
current one (`manifest.json` and the shards table's current snapshot), the last `gc.keep_snapshots` published
ones, the ones any Iceberg tag or branch of the shards table published, and those of every dataset version.
Only tokenmill's own names are candidates (`runs/...`, `manifest-*.json`, the old `shard-*` layout and
temporary `.…tmp-…` leftovers), and none younger than `gc.min_age_seconds` (a running shard run writes its
shards before it publishes them).

Iceberg snapshots: for each table in `gc.expire_tables`, snapshots older than its last `gc.keep_snapshots`
are expired through pyiceberg, except tagged ones, branch heads, and the input snapshots that a downstream
stage recorded as consumed (with their descendants), so incremental runs keep their history. Expiry only
removes metadata; catalogs that do not support it are reported, not failed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyarrow import fs as pafs

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import GcError
from pipelines.lake import summary as keys
from pipelines.stages.shard.publish import RUNS_DIR, manifest_relpath, published_manifests
from pipelines.storage import filesystem
from schemas import TABLES
from sharding.format.manifest import MANIFEST_NAME
from sharding.write.sinks import delete_names

log = logging.getLogger(__name__)

LINK_KEYS = ("input_snapshot_id", "raw_snapshot_id", "decisions_snapshot_id", "clean_snapshot_id")


@dataclass
class GcResult:
    """What gc removed (or would remove, with dry_run): (name relative to the shard folder, bytes)."""

    dry_run: bool
    removed: list[tuple[str, int]] = field(default_factory=list)
    kept_manifests: list[str] = field(default_factory=list)
    kept_objects: int = 0
    expired: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(n for _, n in self.removed)


def _referenced_manifests(cfg: Config, shards: Any) -> list[str]:
    from pipelines.ops.versions import list_versions

    uris: list[str] = []
    if shards is not None:
        uris += [uri for _, uri in published_manifests(shards)[: cfg.gc.keep_snapshots]]
        for ref in shards.refs().values():
            snap = shards.snapshot_by_id(ref.snapshot_id)
            uri = snap.summary.additional_properties.get(keys.MANIFEST_URI) if snap and snap.summary else None
            if uri:
                uris.append(uri)
    for version in list_versions(cfg):
        uris += [u for u in (version.manifest_uri, version.source_manifest_uri) if u]
    return list(dict.fromkeys(uris))


def _listed(fs: pafs.FileSystem, root: str, rel: str) -> set[str]:
    """`rel` and the shard and index paths of the manifest at `root/rel` (relative to `root`)."""
    try:
        with fs.open_input_stream(f"{root}/{rel}") as f:
            manifest = json.loads(f.read())
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise GcError(f"cannot read manifest {root}/{rel} ({exc}); refusing to remove anything") from None
    folder = rel.rpartition("/")[0]
    names = {rel}
    for e in manifest.get("shards", []):
        for key in ("path", "index"):
            names.add(f"{folder}/{e[key]}" if folder else str(e[key]))
    return names


def _ours(rel: str) -> bool:
    name = rel.rpartition("/")[2]
    return (rel.startswith(f"{RUNS_DIR}/") or (name.startswith("manifest-") and name.endswith(".json"))
            or name.startswith("shard-") or (name.startswith(".") and ".tmp-" in name))


def collect_garbage(cfg: Config, *, dry_run: bool = False, now: datetime | None = None) -> GcResult:
    """Remove unreferenced shard objects (see the module docstring); with dry_run only report them."""
    result = GcResult(dry_run=dry_run)
    out = cfg.shards_uri().rstrip("/")
    fs, root = filesystem(out, cfg.shard.s3_options())
    catalog = lake.open_catalog(cfg.lake)
    shards = lake.load_table(catalog, cfg.lake.namespace, "shards")
    keep: set[str] = {MANIFEST_NAME}
    if fs.get_file_info(f"{root}/{MANIFEST_NAME}").type == pafs.FileType.File:
        keep |= _listed(fs, root, MANIFEST_NAME)
    for uri in _referenced_manifests(cfg, shards):
        rel = manifest_relpath(out, uri)
        if rel is None:
            continue  # a pinned copy under versions/, or another shard folder: not ours to collect
        keep |= _listed(fs, root, rel)
        result.kept_manifests.append(uri)
    cutoff = (now or datetime.now(UTC)).timestamp() - cfg.gc.min_age_seconds
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    for info in sorted(infos, key=lambda i: i.path):
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(root):].lstrip("/")
        if rel in keep or not _ours(rel):
            result.kept_objects += rel in keep
            continue
        if info.mtime is not None and info.mtime.timestamp() > cutoff:
            result.notes.append(f"{rel}: younger than gc.min_age_seconds, kept")
            continue
        result.removed.append((rel, int(info.size or 0)))
    if not dry_run:
        # plain object deletes: pyarrow's S3 delete_file would leave a folder marker object behind
        delete_names(out, [name for name, _ in result.removed], s3=cfg.shard.s3_options())
        _remove_empty_run_dirs(fs, root)
    result.expired = expire_snapshots(cfg, catalog, dry_run=dry_run, notes=result.notes)
    log.info("gc: %s %d objects (%d bytes), kept %d objects of %d manifests", "would remove" if dry_run else
             "removed", len(result.removed), result.bytes_freed, result.kept_objects, len(result.kept_manifests))
    return result


def _remove_empty_run_dirs(fs: pafs.FileSystem, root: str) -> None:
    if not isinstance(fs, pafs.LocalFileSystem):
        return  # object stores have no folders
    runs = fs.get_file_info(pafs.FileSelector(f"{root}/{RUNS_DIR}", allow_not_found=True))
    for info in runs:
        if info.type == pafs.FileType.Directory and not fs.get_file_info(pafs.FileSelector(info.path)):
            fs.delete_dir(info.path)


def _consumed_snapshots(catalog: Any, cfg: Config) -> set[int]:
    """Snapshot ids that the tables' current commits name as consumed inputs or linked commits."""
    ids: set[int] = set()
    for name in TABLES:
        table = lake.load_table(catalog, cfg.lake.namespace, name)
        if table is None:
            continue
        summary = lake.last_summary(table)
        for key in LINK_KEYS:
            value = summary.get(keys.key(key), "")
            if value.isdigit():
                ids.add(int(value))
    return ids


def expire_snapshots(cfg: Config, catalog: Any, *, dry_run: bool = False,
                     notes: list[str] | None = None) -> dict[str, int]:
    """Expire old snapshots of `gc.expire_tables` (see the module docstring); table -> number expired."""
    consumed = _consumed_snapshots(catalog, cfg)
    expired: dict[str, int] = {}
    for name in cfg.gc.expire_tables:
        table = lake.load_table(catalog, cfg.lake.namespace, name)
        if table is None or table.current_snapshot() is None:
            continue
        ancestry: list[int] = []
        snap = table.current_snapshot()
        while snap is not None:
            ancestry.append(snap.snapshot_id)
            snap = table.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id is not None else None
        depth = max([cfg.gc.keep_snapshots] + [ancestry.index(i) + 1 for i in consumed if i in ancestry])
        keep = set(ancestry[:depth]) | {ref.snapshot_id for ref in table.refs().values()}
        if name == "shards":
            keep |= {sid for sid, _ in published_manifests(table)[: cfg.gc.keep_snapshots]}
        doomed = [s.snapshot_id for s in table.snapshots() if s.snapshot_id not in keep]
        if not doomed:
            continue
        if not dry_run:
            try:
                table.maintenance.expire_snapshots().by_ids(doomed).commit()
            except Exception as exc:  # a catalog without snapshot removal: report, keep going
                (notes if notes is not None else []).append(f"{name}: snapshot expiry not supported ({exc})")
                continue
        expired[name] = len(doomed)
    return expired
