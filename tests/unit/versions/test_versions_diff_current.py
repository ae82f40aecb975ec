"""Diff and monitoring at the edges: a version made before curate ran, `current` named as such and the CLI's
default, monitoring with no earlier version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from versions_lake import _source_cols, _table

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import VersionError
from pipelines.ops.monitor import run_monitor
from pipelines.ops.versions import (
    create_version,
    manifest_resolver,
    resolve_version,
)
from pipelines.ops.versions_diff import diff_versions


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
