"""Review of dataset versions, lineage and monitoring: odd names, delete/re-create, empty lakes, diff against
`current`, lineage edge cases, monitoring without a base version, CLI exit codes, rewritten shard folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import versions_lake
from versions_lake import _source_cols, _table, doc

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import LineageError, VersionError
from pipelines.lineage import trace_document
from pipelines.monitor import run_monitor
from pipelines.versions import (
    check_name,
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
from pipelines.versions_diff import diff_versions


def _tags(cfg: Config, name: str) -> dict[str, int]:
    catalog = lake.open_catalog(cfg.lake)
    out = {}
    for tname in ("raw_docs", "quarantine", "clean_docs", "doc_decisions", "tokens", "shards"):
        table = lake.load_table(catalog, cfg.lake.namespace, tname)
        if table is not None and name in table.refs():
            out[tname] = table.refs()[name].snapshot_id
    return out


def _pinned_files_match_manifest(info) -> None:
    folder = Path(info.manifest_uri.removeprefix("file://")).parent
    manifest = json.loads((folder / "manifest.json").read_bytes())
    assert hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest() == info.manifest_sha256
    for e in manifest["shards"]:
        assert hashlib.sha256((folder / e["path"]).read_bytes()).hexdigest() == e["sha256"]


# ---- names -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "current", "-v1", ".v1", "v/1", "../v1", "v 1", "v1/..", "vé", "a" * 129,
                                  "v1\x00", "v1:2"])
def test_odd_names_are_refused(name: str) -> None:
    with pytest.raises(VersionError, match="bad version name"):
        check_name(name)


@pytest.mark.parametrize("name", ["v1", "V1.2-rc_3", "2026.11.22", "a" * 128, "v1.json", "current2"])
def test_names_with_dots_dashes_and_underscores_are_accepted(name: str) -> None:
    assert check_name(name) == name


def test_dotted_name_round_trips_through_record_and_pins(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    info = create_version(lake_config, "v1.2-rc_3")
    assert record_path(lake_config, "v1.2-rc_3").name == "v1.2-rc_3.json"
    assert [v.name for v in list_versions(lake_config)] == ["v1.2-rc_3"]
    assert resolve_version(lake_config, "v1.2-rc_3").snapshots == info.snapshots
    assert not list(versions_dir(lake_config).glob("*.tmp"))
    _pinned_files_match_manifest(info)


# ---- delete, re-create -----------------------------------------------------------------------------------

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
        create_version(lake_config, "v1")
    assert _tags(lake_config, "v1") == {} and not record_path(lake_config, "v1").exists()
    assert create_version(lake_config, "v1").pinned == "link"
    _pinned_files_match_manifest(resolve_version(lake_config, "v1"))


def test_delete_of_an_unknown_version_is_a_version_error(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    with pytest.raises(VersionError, match="unknown version 'v2' \\(known: v1\\)"):
        delete_version(lake_config, "v2")
    with pytest.raises(VersionError, match="bad version name"):
        delete_version(lake_config, "../v1")
    assert [v.name for v in list_versions(lake_config)] == ["v1"]


# ---- empty lakes -----------------------------------------------------------------------------------------

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


def test_diff_against_a_version_made_before_curate_ran(lake_config: Config, lake_builder, first_docs) -> None:
    catalog = lake.open_catalog(lake_config.lake)
    raw = _table("raw_docs", first_docs, {**_source_cols(first_docs), "text": ["t"] * len(first_docs),
                                          "run_id": ["r0"] * len(first_docs)})
    table = lake.ensure_table(catalog, lake_config.lake.namespace, "raw_docs")
    f = lake.write_data_file(lake.data_dir(table), raw, prefix="raw_docs")
    lake.commit_files(table, [f], lake.snapshot_summary(lake_config, "ingest", "r0"), overwrite=True)
    v0 = create_version(lake_config, "v0")
    assert v0.snapshots["doc_decisions"] is None and v0.manifest_uri is None and v0.pinned == "none"
    lake_builder(lake_config, first_docs)
    d = diff_versions(lake_config, resolve_version(lake_config, "v0"), resolve_version(lake_config, "current"))
    assert {(r["change"], r["reason"], r["docs"]) for r in d.changes} == {
        ("added", "new document", 3), ("added", "new document", 2)}  # grouped per source file
    assert d.total("added") == 5
    with pytest.raises(VersionError, match="no shard manifest"):
        manifest_resolver(lake_config)("v0")


# ---- diff against current --------------------------------------------------------------------------------

def test_diff_against_current_names_current(lake_config: Config, lake_builder, first_docs, second_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    same = diff_versions(lake_config, resolve_version(lake_config, "v1"), resolve_version(lake_config, "current"))
    assert same.changes == [] and not same.params_changed
    assert same.tables["clean_docs"] == (5, 5) and same.shards["n_samples"] == (5, 5)
    lake_builder(lake_config, second_docs)
    d = diff_versions(lake_config, resolve_version(lake_config, "v1"), resolve_version(lake_config, "current"))
    assert d.b == "current"
    assert {(r["change"], r["reason"], r["docs"]) for r in d.changes} == {
        ("added", "new document", 2), ("removed", "now current filtered:length", 1),
        ("removed", "no longer in input", 1)}
    back = diff_versions(lake_config, resolve_version(lake_config, "current"), resolve_version(lake_config, "v1"))
    assert {(r["change"], r["reason"], r["docs"]) for r in back.changes} == {
        ("added", "was current filtered:length", 1), ("added", "new document", 1),
        ("removed", "no longer in input", 2)}


def test_cli_diff_defaults_to_current(cli, lake_config: Config, lake_builder, first_docs, second_docs,
                                      capsys) -> None:
    lake_builder(lake_config, first_docs)
    assert cli("version", "create", "v1") == 0
    lake_builder(lake_config, second_docs)
    capsys.readouterr()
    assert cli("version", "diff", "v1", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["a"], out["b"]) == ("v1", "current")
    assert out["tables"]["raw_docs"] == [8, 9] and out["shards"]["n_samples"] == [5, 5]


# ---- lineage ---------------------------------------------------------------------------------------------

def test_lineage_of_a_filtered_document(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    t = trace_document(lake_config, "d3")
    assert (t.decision, t.reason, t.position, t.n_tokens, t.in_clean_docs) == ("filtered", "length", None, None,
                                                                                False)
    text = "\n".join(t.lines())
    assert "filtered (length)" in text and "shard" not in text
    assert t.source["source_uri"] == "file:///data/b.jsonl" and t.source["source_offset"] == 0


def test_lineage_of_unknown_ids_and_versions(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    for odd in ("nope", "", "d1'; --", "d%", "D1"):
        with pytest.raises(LineageError, match="is not in raw_docs at version current"):
            trace_document(lake_config, odd)
    with pytest.raises(VersionError, match="unknown version 'v9'"):
        trace_document(lake_config, "d1", version="v9")


def test_lineage_of_a_duplicate_at_an_older_version(lake_config: Config, lake_builder, first_docs,
                                                    second_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    lake_builder(lake_config, [d for d in second_docs if d["doc_id"] != "d5"])
    t = trace_document(lake_config, "d5", version="v1")
    assert (t.decision, t.reason, t.kept_doc_id, t.position) == ("duplicate", "exact", "d0", None)
    with pytest.raises(LineageError, match="'d5' is not in raw_docs at version current"):
        trace_document(lake_config, "d5")


def test_lineage_of_a_document_id_with_quotes_and_slashes(lake_config: Config, lake_builder, first_docs) -> None:
    docs = [*first_docs, doc('a"b\\c/d', uri="file:///data/c.jsonl", offset=0, n_words=20)]
    lake_builder(lake_config, docs)
    t = trace_document(lake_config, 'a"b\\c/d')
    assert t.decision == "kept" and t.position is not None and t.position.key == "000000000005"


# ---- monitoring without a base version -------------------------------------------------------------------

def test_monitor_without_an_earlier_version(cli, lake_config: Config, lake_builder, first_docs, capsys) -> None:
    lake_builder(lake_config, first_docs)
    assert run_monitor(lake_config, "current", strict=True) == (None, [])
    assert cli("monitor", "--strict") == 0
    assert "no earlier version to compare current with" in capsys.readouterr().out
    assert cli("version", "create", "v1", "--strict") == 0
    assert run_monitor(lake_config, "v1", strict=True) == (None, [])  # v1 is the first version
    assert cli("monitor", "--version", "v1", "--strict") == 0
    prom = Path(lake_config.lake.root) / "m.prom"
    assert cli("monitor", "--version", "v1", "--prometheus", str(prom)) == 0
    assert "tokenmill_monitor_check_ok" not in prom.read_text()


# ---- CLI exit codes --------------------------------------------------------------------------------------

def test_cli_exit_codes_for_bad_input(cli, lake_config: Config, lake_builder, first_docs, capsys) -> None:
    lake_builder(lake_config, first_docs)
    assert cli("version", "create", "bad name") == 6
    assert cli("version", "create", "current") == 6
    assert cli("version", "create", "v1") == 0
    assert cli("version", "create", "v1") == 6  # taken
    assert cli("version", "delete", "v2") == 6
    assert cli("version", "diff", "v1", "v2") == 6
    assert cli("version", "show", "current", "--json") == 0
    assert cli("monitor", "--against", "v9") == 6
    assert cli("monitor", "--version", "v9", "--strict") == 6
    assert cli("lineage", "--shard", "shard-000000.tar") == 8
    assert cli("lineage") == 8
    assert cli("lineage", "d1", "--version", "v9") == 6
    assert cli("lineage", "--shard", "9", "--member", "0") == 8
    assert cli("lineage", "--shard", "0", "--member", "000000000003") == 8  # key 3 is in shard 1
    assert cli("lineage", "--shard", "shard-000001", "--member", "3.tokens") == 0
    capsys.readouterr()
    assert cli("lineage", "--shard", "1", "--member", "000000000004", "--json") == 0
    assert json.loads(capsys.readouterr().out)["doc_id"] == "d7"


def test_strict_create_exits_7_and_leaves_nothing_behind(cli, lake_config: Config, lake_builder, first_docs,
                                                         capsys) -> None:
    lake_builder(lake_config, first_docs)
    assert cli("version", "create", "v1") == 0
    lake_builder(lake_config, first_docs[:2])
    assert cli("version", "create", "v2", "--strict") == 7
    assert _tags(lake_config, "v2") == {} and not (versions_dir(lake_config) / "v2").exists()
    assert not record_path(lake_config, "v2").exists()
    assert cli("monitor", "--version", "current", "--against", "v1", "--strict") == 7
    assert cli("monitor", "--version", "current", "--against", "v1") == 0


# ---- shard folder rewritten --------------------------------------------------------------------------------

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
    assert trace_document(lake_config, "d6", version="v1").position.shard == "shard-000001.tar"
    v2 = create_version(lake_config, "v2", pin=pin)  # a new version of the rewritten folder pins the new files
    assert v2.shards["n_shards"] == 3 and v2.manifest_sha256 != v1.manifest_sha256
    _pinned_files_match_manifest(resolve_version(lake_config, "v2"))


def test_unpinned_version_breaks_loudly_when_the_folder_is_rewritten(lake_config: Config, lake_builder,
                                                                     first_docs, second_docs) -> None:
    lake_builder(lake_config, first_docs)
    v1 = create_version(lake_config, "v1", pin="none")
    assert v1.pinned == "none" and v1.manifest_uri == v1.source_manifest_uri
    lake_builder(lake_config, second_docs)
    with pytest.raises(VersionError, match="missing or changed"):
        manifest_resolver(lake_config)("v1")
    delete_version(lake_config, "v1")  # delete needs no verification
    assert list_versions(lake_config) == []


# ---- found by this review and fixed ----------------------------------------------------------------------

def test_a_name_with_a_final_newline_is_refused() -> None:
    with pytest.raises(VersionError, match="bad version name"):
        check_name("v1\n")


def test_current_cannot_be_deleted(cli, lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    with pytest.raises(VersionError, match="bad version name"):
        delete_version(lake_config, "current")
    assert cli("version", "delete", "current") == 6


def test_lineage_finds_a_document_id_with_non_ascii_characters(lake_config: Config, lake_builder,
                                                                first_docs) -> None:
    lake_builder(lake_config, [*first_docs, doc("doc-é", uri="file:///data/c.jsonl", offset=0, n_words=20)])
    t = trace_document(lake_config, "doc-é")
    assert t.decision == "kept" and t.position is not None and t.position.key == "000000000005"


def test_a_version_refuses_shards_the_shards_table_did_not_record(lake_config: Config, lake_builder,
                                                                   first_docs) -> None:
    lake_builder(lake_config, first_docs)
    kept = [d for d in first_docs if d.get("decision", "kept") == "kept"]
    versions_lake.write_shards(Path(lake_config.shards_uri()), kept[:2], 1)  # a rewrite that never committed
    with pytest.raises(VersionError, match="not the one the shards table recorded"):
        create_version(lake_config, "v1")
    assert list_versions(lake_config) == []
