"""A doc_id that occurs in more than one raw record: the first by source coordinates is curated, every other
record gets its own decision (duplicate, reason doc_id), and counts still conserve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import lake
from pipelines.config import load_config
from pipelines.ops.audit import audit
from pipelines.stages import run_stage

pytestmark = pytest.mark.spark

TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void."
OTHER = "And God said, Let there be light: and there was light. And God saw the light, that it was good."


@pytest.mark.parametrize("incremental", [False, True])
def test_repeated_doc_id_is_decided_once_per_record(spark, tmp_path: Path, incremental: bool) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text(json.dumps({"id": "gen-1", "text": TEXT}) + "\n"
                                 + json.dumps({"id": "gen-2", "text": OTHER}) + "\n")
    (src / "b.jsonl").write_text(json.dumps({"id": "gen-1", "text": TEXT + " Amen."}) + "\n")
    cfg = load_config(None, [f"lake.root={tmp_path / 'lake'}", f"sources=[{{type: local, path: '{src}'}}]",
                             f"curate.dedup.incremental={str(incremental).lower()}"])
    run_stage("ingest", cfg, spark)
    run_stage("curate", cfg, spark)
    if incremental:  # the same id arriving in a later batch is a repeat of the decided one
        (src / "c.jsonl").write_text(json.dumps({"id": "gen-2", "text": "Something else entirely, brand new."}) + "\n")
        run_stage("ingest", cfg, spark)
        run_stage("curate", cfg, spark)
    catalog = lake.open_catalog(cfg.lake)
    rows = lake.read_table(lake.ensure_table(catalog, "tokenmill", "doc_decisions")).to_pylist()
    by_id: dict[str, list[tuple[str, str | None, str]]] = {}
    for r in rows:
        by_id.setdefault(r["doc_id"], []).append((r["decision"], r["reason"], r["source_uri"].rsplit("/", 1)[-1]))
    assert sorted(by_id["gen-1"]) == [("duplicate", "doc_id", "b.jsonl"), ("kept", None, "a.jsonl")]
    expected_gen2 = [("kept", None, "a.jsonl")] + ([("duplicate", "doc_id", "c.jsonl")] if incremental else [])
    assert sorted(by_id["gen-2"]) == sorted(expected_gen2)
    clean = lake.read_table(lake.ensure_table(catalog, "tokenmill", "clean_docs")).to_pylist()
    assert sorted(r["doc_id"] for r in clean) == ["gen-1", "gen-2"]
    assert next(r["text"] for r in clean if r["doc_id"] == "gen-1") == TEXT
    result = audit(cfg)
    checks = {c.name: c.ok for c in result.checks}
    assert checks["input = raw_docs + quarantine"] and checks["one decision per raw doc"]
    assert checks["raw_docs = kept + filtered + duplicate"] and checks["kept doc_ids are unique"]
