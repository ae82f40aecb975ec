"""`tokenmill gc` on a local lake: what the current manifest, the last N published ones and the versions
list stays; what nothing lists goes (with --dry-run only reported); young objects and foreign files stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import TokenmillError
from pipelines.ops.gc import collect_garbage
from pipelines.ops.versions import create_version, read_manifest, resolve_version


def _gc_config(cfg: Config, keep: int) -> Config:
    return Config.model_validate({**cfg.model_dump(), "gc": {"keep_snapshots": keep, "min_age_seconds": 0}})


def _files(cfg: Config) -> dict[str, int]:
    root = Path(cfg.shards_uri())
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _listed(cfg: Config, version: str) -> set[str]:
    info = resolve_version(cfg, version)
    manifest = read_manifest(cfg, info)
    return {info.manifest_uri.rsplit("/", 1)[1]} | {e[k] for e in manifest["shards"] for k in ("path", "index")}


def test_gc_keeps_current_recent_and_versioned_manifests(lake_config: Config, lake_builder, first_docs,
                                                         second_docs, capsys) -> None:
    cfg = _gc_config(lake_config, keep=1)
    lake_builder(cfg, first_docs)
    create_version(cfg, "v1")
    v1_files = _listed(cfg, "v1")
    lake_builder(cfg, second_docs)
    second = _listed(cfg, "current")
    lake_builder(cfg, first_docs[:3], per_shard=1)
    current = _listed(cfg, "current")
    (Path(cfg.shards_uri()) / "notes.txt").write_text("not ours")
    before = _files(cfg)
    doomed = set(before) - v1_files - current - {"manifest.json", "notes.txt"}
    assert doomed == second - v1_files  # only the second run's objects are unreferenced

    dry = collect_garbage(cfg, dry_run=True)
    assert {name for name, _ in dry.removed} == doomed and _files(cfg) == before
    assert dry.bytes_freed == sum(before[n] for n in doomed)

    from pipelines.cli import main

    assert main(["gc", "--set", f"lake.root={cfg.lake.root}", "--set", "gc.keep_snapshots=1",
                 "--set", "gc.min_age_seconds=0"]) == 0
    out = capsys.readouterr().out
    assert f"removed {len(doomed)} objects, {dry.bytes_freed:,} bytes freed" in out
    assert all(f"/{name} (" in out for name in doomed)
    assert set(_files(cfg)) == set(before) - doomed
    assert resolve_version(cfg, "v1").manifest_uri  # the version still verifies: manifest and sha256 intact
    assert collect_garbage(cfg).removed == []


def test_gc_spares_young_objects_and_refuses_an_unreadable_kept_manifest(lake_config: Config, lake_builder,
                                                                          first_docs, second_docs) -> None:
    cfg = _gc_config(lake_config, keep=1)
    lake_builder(cfg, first_docs)
    lake_builder(cfg, second_docs)
    young = Config.model_validate({**cfg.model_dump(), "gc": {"keep_snapshots": 1, "min_age_seconds": 3600}})
    result = collect_garbage(young)
    assert result.removed == [] and any("younger than gc.min_age_seconds" in n for n in result.notes)
    later = collect_garbage(young, dry_run=True, now=datetime.now(UTC) + timedelta(hours=2))
    assert later.removed
    current = resolve_version(cfg, "current").manifest_uri
    Path(current.removeprefix("file://")).write_text("not json")
    with pytest.raises(TokenmillError, match="refusing to remove anything"):
        collect_garbage(cfg)


def test_gc_expires_old_snapshots_but_not_tagged_ones(lake_config: Config, lake_builder, first_docs,
                                                      second_docs) -> None:
    cfg = _gc_config(lake_config, keep=1)
    lake_builder(cfg, first_docs)
    create_version(cfg, "v1")
    lake_builder(cfg, second_docs)
    lake_builder(cfg, first_docs)
    catalog = lake.open_catalog(cfg.lake)
    tokens = lake.load_table(catalog, cfg.lake.namespace, "tokens")
    n_before = len(tokens.snapshots())
    result = collect_garbage(cfg)
    tokens = lake.load_table(catalog, cfg.lake.namespace, "tokens")
    kept = {s.snapshot_id for s in tokens.snapshots()}
    assert result.expired["tokens"] == n_before - len(kept) > 0
    assert tokens.current_snapshot().snapshot_id in kept and tokens.refs()["v1"].snapshot_id in kept
    raw = lake.load_table(catalog, cfg.lake.namespace, "raw_docs")
    assert "raw_docs" not in result.expired and len(raw.snapshots()) > 1  # the audit needs ingest history
    assert resolve_version(cfg, "v1").name == "v1"
