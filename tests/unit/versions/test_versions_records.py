"""Dataset versions: Iceberg tags, version records, pinned shards and time travel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import VersionError
from pipelines.ops.versions import (
    create_version,
    delete_version,
    list_versions,
    previous_version,
    read_manifest,
    read_version_table,
    resolve_version,
)


def test_create_tags_every_table_and_records_the_manifest(lake_config: Config, lake_builder, first_docs) -> None:
    snaps = lake_builder(lake_config, first_docs)
    info = create_version(lake_config, "v1", message="first", pin="link")
    catalog = lake.open_catalog(lake_config.lake)
    for name, snapshot_id in snaps.items():
        table = lake.load_table(catalog, lake_config.lake.namespace, name)
        assert table.refs()["v1"].snapshot_id == snapshot_id
        assert info.snapshots[name] == snapshot_id
    assert info.snapshots["quarantine"] is None
    assert info.table_rows["raw_docs"] == 8 and info.table_rows["clean_docs"] == 5
    assert info.shards == {"n_shards": 2, "n_samples": 5, "n_tokens": 2 * (40 + 60 + 80 + 100 + 70),
                           "total_bytes": info.shards["total_bytes"]}
    assert info.pinned == "link"
    pinned = Path(info.manifest_uri.removeprefix("file://"))
    assert pinned.parent == Path(lake_config.lake.root).absolute() / "versions" / "v1" / "shards"
    assert info.source_manifest_uri.endswith(f"/shards/{pinned.name}") and pinned.name.startswith("manifest-")
    manifest = json.loads(pinned.read_text())
    files = sorted(str(p.relative_to(pinned.parent)) for p in pinned.parent.rglob("*") if p.is_file())
    assert files == sorted([pinned.name, *(e[k] for e in manifest["shards"] for k in ("path", "index"))])
    assert len(files) == 5 and all(f.startswith("runs/") for f in files if f != pinned.name)
    record = json.loads((Path(lake_config.lake.root) / "versions" / "v1.json").read_text())
    assert record["format"] == "tokenmill-version/1" and record["message"] == "first"
    assert record["params_hash"] == lake_config.params_hash()


def test_time_travel_reads_the_version_after_the_lake_moved_on(lake_config: Config, lake_builder, first_docs,
                                                               second_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    lake_builder(lake_config, second_docs)
    v1 = resolve_version(lake_config, "v1")
    kept = read_version_table(lake_config, v1, "clean_docs", ("doc_id",)).column("doc_id").to_pylist()
    assert sorted(kept) == ["d0", "d1", "d2", "d6", "d7"]
    now = resolve_version(lake_config, "current")
    kept_now = read_version_table(lake_config, now, "clean_docs", ("doc_id",)).column("doc_id").to_pylist()
    assert sorted(kept_now) == ["d0", "d2", "d7", "d8", "d9"]
    # the shard stage rewrote the shard folder; the pinned copy still matches the v1 record
    manifest = json.loads(Path(v1.manifest_uri.removeprefix("file://")).read_text())
    assert manifest["n_samples"] == 5
    now_manifest = json.loads(Path(now.manifest_uri.removeprefix("file://")).read_text())
    assert now_manifest["n_samples"] == 5
    assert manifest["shards"][0]["sha256"] != now_manifest["shards"][0]["sha256"]


def test_list_and_previous_follow_creation_order(lake_config: Config, lake_builder, first_docs,
                                                 second_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "b-first")
    lake_builder(lake_config, second_docs)
    create_version(lake_config, "a-second")
    assert [v.name for v in list_versions(lake_config)] == ["b-first", "a-second"]
    assert previous_version(lake_config, "a-second").name == "b-first"
    assert previous_version(lake_config, "b-first") is None
    assert previous_version(lake_config, "current").name == "a-second"


def test_names_are_validated_and_not_reused(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    for bad in ("", "current", "has space", "-dash", "x" * 200):
        with pytest.raises(VersionError, match="bad version name"):
            create_version(lake_config, bad)
    create_version(lake_config, "v1")
    with pytest.raises(VersionError, match="already exists"):
        create_version(lake_config, "v1")


def test_unknown_version_names_the_known_ones(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    with pytest.raises(VersionError, match=r"unknown version 'v9' \(known: v1\)"):
        resolve_version(lake_config, "v9")


def test_empty_lake_has_nothing_to_version(lake_config: Config) -> None:
    with pytest.raises(VersionError, match="nothing to version"):
        create_version(lake_config, "v1")
    assert list_versions(lake_config) == []


def test_unpinned_version_references_the_published_manifest_and_refuses_a_changed_one(
        lake_config: Config, lake_builder, first_docs, second_docs) -> None:
    lake_builder(lake_config, first_docs)
    info = create_version(lake_config, "v1")
    folder = Path(lake_config.shards_uri())
    assert info.pinned == "none" and info.manifest_uri == info.source_manifest_uri
    assert info.manifest_uri.startswith(f"file://{folder}/manifest-")
    lake_builder(lake_config, second_docs)  # a later run publishes another manifest; v1's stays as it was
    assert read_manifest(lake_config, resolve_version(lake_config, "v1"))["n_samples"] == 5
    Path(info.manifest_uri.removeprefix("file://")).write_text("{}")  # changed by hand
    with pytest.raises(VersionError, match="manifest .* changed since"):
        resolve_version(lake_config, "v1")
    assert resolve_version(lake_config, "v1", verify=False).name == "v1"


def test_moved_tag_is_detected(lake_config: Config, lake_builder, first_docs, second_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    snaps = lake_builder(lake_config, second_docs)
    table = lake.load_table(lake.open_catalog(lake_config.lake), lake_config.lake.namespace, "tokens")
    table.manage_snapshots().remove_tag("v1").create_tag(snaps["tokens"], "v1").commit()
    with pytest.raises(VersionError, match="tag on tokens is missing or moved"):
        resolve_version(lake_config, "v1")


def test_delete_removes_tags_pins_and_record(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    delete_version(lake_config, "v1")
    assert list_versions(lake_config) == []
    table = lake.load_table(lake.open_catalog(lake_config.lake), lake_config.lake.namespace, "raw_docs")
    assert "v1" not in table.refs()
    assert not (Path(lake_config.lake.root) / "versions" / "v1").exists()
    create_version(lake_config, "v1")  # the name is free again
