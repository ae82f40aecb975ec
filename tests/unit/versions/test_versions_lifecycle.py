"""A version's life: delete and re-create, a failed create that leaves nothing behind, empty lakes, pinned
shards surviving later runs, an unpinned version outliving later runs and failing loudly when its manifest is
gone, and shards the shards table never published ignored."""

from __future__ import annotations

from pathlib import Path

import pytest
import versions_lake
from versions_checks import _pinned_files_match_manifest, _tags

from pipelines.config import Config
from pipelines.errors import VersionError
from pipelines.ops.lineage import trace_document
from pipelines.ops.monitor import run_monitor
from pipelines.ops.versions import (
    create_version,
    delete_version,
    list_versions,
    manifest_resolver,
    previous_version,
    read_manifest,
    read_version_table,
    record_path,
    resolve_version,
    versions_dir,
)
from pipelines.ops.versions_diff import diff_versions


def test_deleting_one_of_two_versions_on_the_same_snapshots_keeps_the_other(lake_config: Config, lake_builder,
                                                                           first_docs, second_docs) -> None:
    lake_builder(lake_config, first_docs)
    v1 = create_version(lake_config, "v1")
    v1b = create_version(lake_config, "v1b")  # same snapshots, same shard files (hard links to one inode)
    assert v1b.snapshots == v1.snapshots
    lake_builder(lake_config, second_docs)  # the shard folder is rewritten
    v2 = create_version(lake_config, "v2")
    delete_version(lake_config, "v1")
    assert _tags(lake_config, "v1") == {}
    again = resolve_version(lake_config, "v1b")  # its tags and pinned shards are intact
    assert again.snapshots == v1.snapshots
    _pinned_files_match_manifest(again)
    assert manifest_resolver(lake_config)("v1b") == v1b.manifest_uri
    # the version after the deleted one now follows the one before it
    assert previous_version(lake_config, "v2").name == "v1b"
    assert read_version_table(lake_config, again, "clean_docs", ("doc_id",)).num_rows == 5
    assert resolve_version(lake_config, "v2").snapshots == v2.snapshots


def test_a_deleted_version_can_be_created_again_on_the_new_state(lake_config: Config, lake_builder, first_docs,
                                                                 second_docs) -> None:
    lake_builder(lake_config, first_docs)
    old = create_version(lake_config, "v1")
    delete_version(lake_config, "v1")
    assert not record_path(lake_config, "v1").exists() and not (versions_dir(lake_config) / "v1").exists()
    with pytest.raises(VersionError, match="unknown version 'v1'"):
        resolve_version(lake_config, "v1")
    snaps = lake_builder(lake_config, second_docs)
    new = create_version(lake_config, "v1", message="again")
    assert new.snapshots["raw_docs"] == snaps["raw_docs"] != old.snapshots["raw_docs"]
    assert _tags(lake_config, "v1")["raw_docs"] == snaps["raw_docs"]
    info = resolve_version(lake_config, "v1")
    assert info.message == "again" and info.table_rows["raw_docs"] == len(second_docs)
    _pinned_files_match_manifest(info)
    assert read_manifest(lake_config, info)["n_samples"] == 5  # d0 d2 d7 d8 d9


def test_failed_create_on_a_leftover_pin_folder_leaves_no_tags_and_can_be_retried(lake_config: Config,
                                                                                  lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    leftover = versions_dir(lake_config) / "v1" / "shards"
    leftover.mkdir(parents=True)
    with pytest.raises(FileExistsError):
        create_version(lake_config, "v1", pin="link")
    assert _tags(lake_config, "v1") == {} and not record_path(lake_config, "v1").exists()
    assert create_version(lake_config, "v1", pin="link").pinned == "link"
    _pinned_files_match_manifest(resolve_version(lake_config, "v1"))


def test_delete_of_an_unknown_version_is_a_version_error(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    with pytest.raises(VersionError, match="unknown version 'v2' \\(known: v1\\)"):
        delete_version(lake_config, "v2")
    with pytest.raises(VersionError, match="bad version name"):
        delete_version(lake_config, "../v1")
    assert [v.name for v in list_versions(lake_config)] == ["v1"]


def test_version_of_a_lake_whose_tables_are_empty(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    lake_builder(lake_config, [])  # every table overwritten with nothing: snapshots exist, no rows
    v0 = create_version(lake_config, "v0")
    assert all(v0.table_rows[t] == 0 for t in ("raw_docs", "clean_docs", "tokens", "doc_decisions"))
    assert v0.shards == {"n_shards": 0, "n_samples": 0, "n_tokens": 0, "total_bytes": 0}
    assert resolve_version(lake_config, "v0").name == "v0"
    lake_builder(lake_config, first_docs)
    d = diff_versions(lake_config, resolve_version(lake_config, "v0"), resolve_version(lake_config, "current"))
    assert d.total("added") == 5 and d.total("removed") == 0
    base, checks = run_monitor(lake_config, "current", strict=True)  # growth from nothing is no drop
    assert base.name == "v0" and all(c.ok for c in checks)


@pytest.mark.parametrize("pin", ["link", "copy"])
def test_pinned_shards_survive_the_shard_folder_being_rewritten(lake_config: Config, lake_builder, first_docs,
                                                                second_docs, pin: str) -> None:
    lake_builder(lake_config, first_docs)
    v1 = create_version(lake_config, "v1", pin=pin)
    old_manifest = read_manifest(lake_config, v1)
    lake_builder(lake_config, second_docs)  # unlink + rename in the shard folder
    lake_builder(lake_config, first_docs[:3], per_shard=1)
    again = resolve_version(lake_config, "v1")
    assert read_manifest(lake_config, again) == old_manifest
    _pinned_files_match_manifest(again)
    assert trace_document(lake_config, "d6", version="v1").position.shard.endswith("/shard-000001.tar")
    v2 = create_version(lake_config, "v2", pin=pin)  # a new version of the rewritten folder pins the new files
    assert v2.shards["n_shards"] == 3 and v2.manifest_sha256 != v1.manifest_sha256
    _pinned_files_match_manifest(resolve_version(lake_config, "v2"))


def test_unpinned_version_outlives_later_runs_and_breaks_loudly_when_its_manifest_is_gone(
        lake_config: Config, lake_builder, first_docs, second_docs) -> None:
    lake_builder(lake_config, first_docs)
    v1 = create_version(lake_config, "v1", pin="none")
    assert v1.pinned == "none" and v1.manifest_uri == v1.source_manifest_uri
    lake_builder(lake_config, second_docs)
    lake_builder(lake_config, first_docs[:3], per_shard=1)
    assert manifest_resolver(lake_config)("v1") == v1.manifest_uri
    _pinned_files_match_manifest(resolve_version(lake_config, "v1"))
    Path(v1.manifest_uri.removeprefix("file://")).unlink()  # removed by hand
    with pytest.raises(VersionError, match="missing or changed"):
        manifest_resolver(lake_config)("v1")
    delete_version(lake_config, "v1")  # delete needs no verification
    assert list_versions(lake_config) == []


def test_a_version_ignores_shards_the_shards_table_did_not_publish(lake_config: Config, lake_builder,
                                                                   first_docs) -> None:
    lake_builder(lake_config, first_docs)
    published = resolve_version(lake_config, "current").manifest_uri
    kept = [d for d in first_docs if d.get("decision", "kept") == "kept"]
    versions_lake.write_shards(Path(lake_config.shards_uri()), kept[:2], 1, "uncommitted")  # never committed
    v1 = create_version(lake_config, "v1")
    assert v1.manifest_uri == published and v1.shards["n_samples"] == 5
