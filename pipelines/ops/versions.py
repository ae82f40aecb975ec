"""Dataset versions: a name for one consistent state of every table and of the shards.

`create_version` tags the current snapshot of every tokenmill table with the version name (an Iceberg tag, so
`VERSION AS OF 'NAME'` works in any Iceberg engine) and writes a version record:

    <lake.root>/versions/<NAME>.json           the record (format tokenmill-version/1)

A version is a reference to the manifest the shards table's snapshot published (`manifest-<stamp>-<run>.json`
under the shard folder, local or S3): shard runs write new object names and never overwrite or delete an
object, and `tokenmill gc` keeps every object a version's manifest lists, so nothing needs copying. The record
keeps the manifest's sha256 and `resolve_version` refuses a manifest that changed since. `pin="link"|"copy"`
additionally places a private copy of the manifest and the files it lists (hard links, or copies) under
`<lake.root>/versions/<NAME>/shards/`, for a local shard folder that may be removed by hand.

Why a JSON file rather than an Iceberg table: the record is tiny, written once and never updated, is readable
without a catalog, and DVC/git can track the folder. The tags live in the catalog, the record next to the lake;
`resolve_version` checks that the two agree.

The pseudo-version `current` is the lake's present state (current snapshots, current manifest); every reader
here accepts it where it accepts a version name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from pipelines import lake
from pipelines.config import Config, load_config
from pipelines.errors import VersionError
from pipelines.lake import summary as keys
from pipelines.storage import S3Options, filesystem
from schemas import TABLES
from sharding.format import ShardManifest, parse_manifest

log = logging.getLogger(__name__)

FORMAT = "tokenmill-version/1"
CURRENT = "current"
PinMode = Literal["link", "copy", "none"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class VersionInfo:
    """One dataset version (or the `current` state).

    `snapshots` maps each table name to the Iceberg snapshot id of the version (None: table missing or empty);
    `manifest_uri` is where the loader reads the version's shards (the pinned copy when pinned);
    `table_rows` holds row counts from snapshot metadata; `shards` the manifest totals
    (n_shards, n_samples, n_tokens, total_bytes).
    """

    name: str
    created_at: str
    snapshots: dict[str, int | None]
    manifest_uri: str | None = None
    manifest_sha256: str | None = None
    source_manifest_uri: str | None = None
    pinned: str = "none"
    params_hash: str | None = None
    git_sha: str | None = None
    table_rows: dict[str, int] = field(default_factory=dict)
    shards: dict[str, int] = field(default_factory=dict)
    message: str = ""

    def snapshot_id(self, table: str) -> int | None:
        return self.snapshots.get(table)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> VersionInfo:
        data = json.loads(text)
        if data.pop("format", None) != FORMAT:
            raise VersionError(f"not a {FORMAT} record")
        return cls(**data)


def versions_dir(cfg: Config) -> Path:
    return Path(cfg.lake.root).absolute() / "versions"


def record_path(cfg: Config, name: str) -> Path:
    return versions_dir(cfg) / f"{name}.json"


def check_name(name: str) -> str:
    """A version name is 1-128 characters of letters, digits, `.`, `_`, `-`, starting alphanumeric; not `current`."""
    if not _NAME.fullmatch(name) or name == CURRENT:  # fullmatch: `$` alone would let a final newline in
        raise VersionError(f"bad version name {name!r}: use letters, digits, '.', '_', '-' (and not {CURRENT!r})")
    return name


def _tables(catalog: Catalog, cfg: Config) -> dict[str, Table | None]:
    return {name: lake.load_table(catalog, cfg.lake.namespace, name) for name in TABLES}


def _rows(table: Table | None, snapshot_id: int | None) -> int:
    if table is None or snapshot_id is None:
        return 0
    snap = table.snapshot_by_id(snapshot_id)
    props = snap.summary.additional_properties if snap is not None and snap.summary else {}
    if "total-records" in props:
        return int(props["total-records"])
    return lake.read_table(table, ("*",), snapshot_id).num_rows


def manifest_location(cfg: Config, shards_table: Table | None) -> str:
    """The manifest the shards table's current snapshot published (its summary, else its one distinct
    manifest_uri), else the `<shards_uri>/manifest.json` copy."""
    if shards_table is not None and shards_table.current_snapshot() is not None:
        published = lake.last_summary(shards_table).get(keys.MANIFEST_URI)
        if published:
            return published
        uris = set(lake.read_table(shards_table, ("manifest_uri",)).column("manifest_uri").to_pylist()) - {None}
        if len(uris) == 1:
            return str(next(iter(uris)))
    return cfg.shards_uri().rstrip("/") + "/manifest.json"


def read_bytes(uri: str, s3: S3Options | None = None) -> bytes | None:
    """The whole object at a local path, file:// or s3:// URI; None when it does not exist."""
    fs, path = filesystem(uri, s3)
    try:
        with fs.open_input_stream(path) as f:
            return bytes(f.read())
    except (FileNotFoundError, OSError):
        return None


def current_state(cfg: Config, catalog: Catalog | None = None) -> VersionInfo:
    """The lake as it is now, shaped like a version named `current` (nothing is tagged or written)."""
    catalog = catalog or lake.open_catalog(cfg.lake)
    tables = _tables(catalog, cfg)
    snapshots: dict[str, int | None] = {}
    for name, table in tables.items():
        snap = table.current_snapshot() if table is not None else None
        snapshots[name] = snap.snapshot_id if snap is not None else None
    manifest_uri = manifest_location(cfg, tables.get("shards"))
    blob = read_bytes(manifest_uri, cfg.shard.s3_options())
    return VersionInfo(
        name=CURRENT,
        created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        snapshots=snapshots,
        manifest_uri=manifest_uri if blob is not None else None,
        manifest_sha256=hashlib.sha256(blob).hexdigest() if blob is not None else None,
        source_manifest_uri=manifest_uri if blob is not None else None,
        params_hash=cfg.params_hash(),
        git_sha=lake.git_sha(),
        table_rows={n: _rows(tables[n], s) for n, s in snapshots.items()},
        shards=parse_manifest(blob, manifest_uri).totals() if blob is not None else {},
    )


def _check_manifest_matches_shards(catalog: Catalog, cfg: Config, state: VersionInfo) -> None:
    """Raise VersionError when the manifest in the shard folder is not the one the shards table's snapshot
    recorded (a shard run rewrote the folder, then failed before its commit): a version must not pair
    one run's tables with another run's shards."""
    table = lake.load_table(catalog, cfg.lake.namespace, "shards")
    snap = table.current_snapshot() if table is not None else None
    props = snap.summary.additional_properties if snap is not None and snap.summary else {}
    recorded = props.get(keys.MANIFEST_SHA256)
    if recorded and state.manifest_sha256 is not None and recorded != state.manifest_sha256:
        raise VersionError(
            f"the shard manifest {state.manifest_uri} is not the one the shards table recorded "
            f"(sha256 {state.manifest_sha256[:12]}, table {recorded[:12]}): re-run the shard stage first"
        )


def _pin_shards(manifest_uri: str, dest: Path, mode: PinMode) -> str:
    """Hard-link (or copy) the local manifest and every shard and index file it lists into `dest`, keeping
    their paths relative to the manifest; return the pinned manifest URI. Falls back to copying per file when
    a link fails (another device, a filesystem without hard links)."""
    manifest_path = Path(manifest_uri.removeprefix("file://"))
    src = manifest_path.parent
    manifest = json.loads(manifest_path.read_bytes())
    names = [manifest_path.name, *(e[k] for e in manifest.get("shards", []) for k in ("path", "index"))]
    dest.mkdir(parents=True, exist_ok=False)
    for name in names:
        entry, target = src / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "link":
            try:
                os.link(entry, target)
                continue
            except OSError:
                log.debug("hard link failed for %s, copying", entry)
        shutil.copy2(entry, target)
    return f"file://{dest / manifest_path.name}"


def create_version(cfg: Config, name: str, *, message: str = "", pin: PinMode = "none",
                   catalog: Catalog | None = None) -> VersionInfo:
    """Tag every table's current snapshot as `name` and write the version record referencing the current
    manifest (`pin="link"|"copy"`: also a private copy of a local manifest and its shards).

    Raises VersionError when the name is invalid or taken (as a record or as a tag on any table) or when no
    table has a snapshot yet. A failure half-way removes the tags already created, so a version either exists
    whole or not at all.
    """
    check_name(name)
    if pin not in ("link", "copy", "none"):
        raise VersionError(f"bad pin mode {pin!r}: use link, copy or none")
    path = record_path(cfg, name)
    if path.exists():
        raise VersionError(f"version {name!r} already exists ({path})")
    catalog = catalog or lake.open_catalog(cfg.lake)
    state = current_state(cfg, catalog)
    if not any(s is not None for s in state.snapshots.values()):
        raise VersionError("nothing to version: no table has a snapshot yet (run the pipeline first)")
    _check_manifest_matches_shards(catalog, cfg, state)
    tables = _tables(catalog, cfg)
    for tname, table in tables.items():
        if table is not None and name in table.refs():
            raise VersionError(f"tag {name!r} already exists on table {tname}")
    tagged: list[Table] = []
    try:
        for tname, snapshot_id in state.snapshots.items():
            table = tables[tname]
            if table is None or snapshot_id is None:
                continue
            table.manage_snapshots().create_tag(snapshot_id, name).commit()
            tagged.append(table)
        manifest_uri = state.manifest_uri
        if manifest_uri is not None and pin != "none" and "://" not in manifest_uri.removeprefix("file://"):
            manifest_uri = _pin_shards(manifest_uri, versions_dir(cfg) / name / "shards", pin)
            pinned: str = pin
        else:
            pinned = "none"
        info = VersionInfo(**{**asdict(state), "name": name, "manifest_uri": manifest_uri, "pinned": pinned,
                              "message": message})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(info.to_json() + "\n")
        tmp.replace(path)
    except BaseException:
        for table in tagged:
            try:
                table.manage_snapshots().remove_tag(name).commit()
            except Exception:  # keep the original error; a leftover tag is reported by resolve_version
                log.warning("could not remove tag %s from %s", name, table.name())
        shutil.rmtree(versions_dir(cfg) / name, ignore_errors=True)
        raise
    log.info("version %s: %s", name, {k: v for k, v in info.snapshots.items() if v is not None})
    return info


def list_versions(cfg: Config) -> list[VersionInfo]:
    """Every recorded version, oldest first (by creation time, then name)."""
    folder = versions_dir(cfg)
    if not folder.is_dir():
        return []
    infos = [VersionInfo.from_json(p.read_text()) for p in folder.glob("*.json")]
    return sorted(infos, key=lambda v: (v.created_at, v.name))


def resolve_version(cfg: Config, name: str, *, verify: bool = True) -> VersionInfo:
    """The version record of `name` (`current`: the lake's present state).

    With `verify`, checks that each table's Iceberg tag still points at the recorded snapshot and that the
    manifest at `manifest_uri` has the recorded sha256; raises VersionError naming what differs or is unknown.
    """
    if name == CURRENT:
        return current_state(cfg)
    check_name(name)
    path = record_path(cfg, name)
    if not path.exists():
        known = ", ".join(v.name for v in list_versions(cfg)) or "none"
        raise VersionError(f"unknown version {name!r} (known: {known})")
    info = VersionInfo.from_json(path.read_text())
    if verify:
        catalog = lake.open_catalog(cfg.lake)
        for tname, snapshot_id in info.snapshots.items():
            if snapshot_id is None:
                continue
            table = lake.load_table(catalog, cfg.lake.namespace, tname)
            ref = table.refs().get(name) if table is not None else None
            if ref is None or ref.snapshot_id != snapshot_id:
                raise VersionError(f"version {name!r}: tag on {tname} is missing or moved "
                                   f"(record says snapshot {snapshot_id})")
        if info.manifest_uri is not None:
            blob = read_bytes(info.manifest_uri, cfg.shard.s3_options())
            if blob is None or hashlib.sha256(blob).hexdigest() != info.manifest_sha256:
                raise VersionError(f"version {name!r}: manifest {info.manifest_uri} is missing or changed since "
                                   "the version was created")
    return info


def previous_version(cfg: Config, name: str) -> VersionInfo | None:
    """The version created just before `name` (for `current`: the newest version); None when there is none."""
    versions = list_versions(cfg)
    if name == CURRENT:
        return versions[-1] if versions else None
    names = [v.name for v in versions]
    if name not in names:
        raise VersionError(f"unknown version {name!r}")
    i = names.index(name)
    return versions[i - 1] if i > 0 else None


def read_version_table(cfg: Config, info: VersionInfo, table: str, columns: tuple[str, ...] = ("*",),
                       catalog: Catalog | None = None) -> pa.Table:
    """Time travel: `table` as of the version's snapshot (an empty table when it had none).

    Columns the snapshot's schema lacks are left out rather than failing, so versions written before a new
    signal column existed stay readable.
    """
    catalog = catalog or lake.open_catalog(cfg.lake)
    tbl = lake.load_table(catalog, cfg.lake.namespace, table)
    snapshot_id = info.snapshot_id(table)
    if tbl is None or snapshot_id is None:
        schema = TABLES[table].arrow_schema
        keep = [f for f in schema if columns == ("*",) or f.name in columns]
        return pa.schema(keep).empty_table()
    if columns != ("*",):
        snap = tbl.snapshot_by_id(snapshot_id)
        schema = tbl.schemas().get(snap.schema_id) if snap is not None and snap.schema_id is not None else None
        names = set((schema or tbl.schema()).column_names)
        columns = tuple(c for c in columns if c in names)
    return lake.read_table(tbl, columns, snapshot_id)


def shard_manifest(cfg: Config, info: VersionInfo) -> ShardManifest | None:
    """The version's shard manifest, validated (sharding.format); None when it has none or it is gone.
    Raises ManifestError when it is there but invalid."""
    if info.manifest_uri is None:
        return None
    blob = read_bytes(info.manifest_uri, cfg.shard.s3_options())
    return parse_manifest(blob, info.manifest_uri) if blob is not None else None


def read_manifest(cfg: Config, info: VersionInfo) -> dict[str, Any] | None:
    """The version's manifest as its JSON document (validated), for reports; None as `shard_manifest`."""
    manifest = shard_manifest(cfg, info)
    return dict(manifest.document) if manifest is not None else None


def delete_version(cfg: Config, name: str) -> None:
    """Remove the version's tags, its pinned shards and its record (the snapshots may then be expired)."""
    check_name(name)  # `current` resolves, but is no version to delete
    info = resolve_version(cfg, name, verify=False)
    catalog = lake.open_catalog(cfg.lake)
    for tname in info.snapshots:
        table = lake.load_table(catalog, cfg.lake.namespace, tname)
        if table is not None and name in table.refs():
            table.manage_snapshots().remove_tag(name).commit()
    shutil.rmtree(versions_dir(cfg) / name, ignore_errors=True)
    record_path(cfg, name).unlink()


def manifest_resolver(config: Config | str | Path = "params.yaml", overrides: Sequence[str] = ()
                      ) -> Callable[[str], str]:
    """A `TokenLoader` resolver: a dataset version name -> the manifest URI pinned by that version.

    `config` is a Config or the YAML file describing the lake (default params.yaml in the working directory).
    """
    cfg = config if isinstance(config, Config) else load_config(config, list(overrides))

    def resolve(name: str) -> str:
        info = resolve_version(cfg, name)
        if info.manifest_uri is None:
            raise VersionError(f"version {name!r} has no shard manifest (no shard stage had run when it was made)")
        return info.manifest_uri

    return resolve
