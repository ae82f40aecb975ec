"""The `version`, `lineage`, `report` and `monitor` subcommands through the tokenmill entry point."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.config import Config
from pipelines.ops.versions import list_versions


def test_version_lifecycle(cli, lake_config: Config, lake_builder, first_docs, second_docs, capsys) -> None:
    lake_builder(lake_config, first_docs)
    assert cli("version", "create", "v1", "-m", "first cut") == 0
    lake_builder(lake_config, second_docs)
    assert cli("version", "create", "v2") == 0
    capsys.readouterr()
    assert cli("version", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in listed] == ["v1", "v2"] and listed[0]["message"] == "first cut"
    assert cli("version", "show", "v1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["table_rows"]["raw_docs"] == 8
    assert cli("version", "diff", "v1", "v2", "--json") == 0
    diff = json.loads(capsys.readouterr().out)
    assert {(r["change"], r["reason"], r["docs"]) for r in diff["changes"]} == {
        ("added", "new document", 2), ("removed", "now v2 filtered:length", 1),
        ("removed", "no longer in input", 1)}
    assert cli("version", "diff", "v1", "v2") == 0
    assert "v1 -> v2: +2 documents (+240 tokens), -2 documents (-320 tokens)" in capsys.readouterr().out
    assert cli("version", "show", "v9") == 6
    assert "unknown version 'v9' (known: v1, v2)" in capsys.readouterr().err
    assert cli("version", "delete", "v2") == 0
    assert [v.name for v in list_versions(lake_config)] == ["v1"]


def test_lineage_by_doc_and_by_member(cli, lake_config: Config, lake_builder, first_docs, capsys) -> None:
    lake_builder(lake_config, first_docs)
    assert cli("lineage", "d6") == 0
    out = capsys.readouterr().out
    assert out.startswith("document d6 at version current")
    assert "shard-000001.tar member 000000000003.tokens" in out
    assert cli("lineage", "--shard", "shard-000001.tar", "--member", "000000000004.json", "--json") == 0
    trace = json.loads(capsys.readouterr().out)
    assert trace["doc_id"] == "d7" and trace["source"]["source_offset"] == 4
    assert cli("lineage", "nope") == 8
    assert "'nope' is not in raw_docs" in capsys.readouterr().err


def test_strict_monitoring_fails_the_run_and_blocks_the_version(cli, lake_config: Config, lake_builder,
                                                                first_docs, capsys) -> None:
    lake_builder(lake_config, first_docs)
    assert cli("version", "create", "v1") == 0
    lake_builder(lake_config, first_docs[:2])  # 5 kept documents -> 2
    prom = Path(lake_config.lake.root) / "tokenmill.prom"
    assert cli("monitor", "--prometheus", str(prom)) == 0
    assert "WARNING" in capsys.readouterr().out
    assert 'tokenmill_monitor_check_ok{check="volume kept documents"} 0' in prom.read_text()
    assert cli("monitor", "--strict") == 7
    assert "volume kept documents" in capsys.readouterr().err
    assert cli("version", "create", "v2", "--strict") == 7
    assert [v.name for v in list_versions(lake_config)] == ["v1"]
    assert cli("version", "create", "v2") == 0  # without --strict the warning does not block


def test_report_command_writes_the_page(cli, lake_config: Config, lake_builder, first_docs, tmp_path) -> None:
    lake_builder(lake_config, first_docs)
    out = tmp_path / "r.html"
    assert cli("report", "--output", str(out)) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
