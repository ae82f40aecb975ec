"""run_ingest on local folders: the malformed corpus, conservation of counts, incremental re-runs and the
cleanup of a run that committed quarantine but never reached raw_docs."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines import lake
from pipelines.config import Config
from pipelines.stages.ingest.spark import run_ingest
from schemas import quarantine as quarantine_schema

pytestmark = pytest.mark.spark

_spec = importlib.util.spec_from_file_location(
    "malformed_corpus", Path(__file__).resolve().parents[1] / "unit" / "sources" / "malformed_corpus.py")
corpus = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules.setdefault("malformed_corpus", corpus)
_spec.loader.exec_module(corpus)  # type: ignore[union-attr]


def _config(lake_config: Config, folder: Path, glob: str = "**/*") -> Config:
    data = lake_config.model_dump()
    data["sources"] = [{"type": "local", "path": str(folder), "glob": glob}]
    data["ingest"] = {"max_record_bytes": corpus.MAX_RECORD_BYTES, "quarantine_raw_bytes": 256}
    return Config.model_validate(data)


def _tables(cfg: Config) -> tuple[pa.Table, pa.Table, object]:
    catalog = lake.open_catalog(cfg.lake)
    raw = catalog.load_table((cfg.lake.namespace, "raw_docs"))
    q = catalog.load_table((cfg.lake.namespace, "quarantine"))
    return lake.read_table(raw), lake.read_table(q), raw


def test_malformed_corpus_conserves_and_reruns_are_incremental(spark, lake_config: Config, tmp_path: Path) -> None:
    cases = corpus.build_corpus(tmp_path / "in")
    cfg = _config(lake_config, tmp_path / "in")
    report = run_ingest(spark, cfg)

    want_errors = Counter(e for c in cases for e in c.errors)
    want_docs = sum(c.docs for c in cases)
    c = report.counts
    assert c["raw_docs"] == want_docs
    assert c["quarantined"] == sum(want_errors.values())
    assert c["records_read"] == c["raw_docs"] + c["quarantined"]
    assert {k.removeprefix("quarantine_"): v for k, v in c.items() if k.startswith("quarantine_")} == want_errors
    assert c["objects_read"] == len(cases) and c["objects_skipped"] == 0
    assert c["bytes_read"] == sum(len(x.data) for x in cases)

    raw, q, raw_table = _tables(cfg)
    assert raw.num_rows == want_docs and q.num_rows == c["quarantined"]
    assert raw.column("doc_id").null_count == 0
    coords = list(zip(raw.column("source_uri").to_pylist(), raw.column("source_offset").to_pylist(), strict=True))
    assert len(set(coords)) == raw.num_rows
    assert set(raw.column("run_id").to_pylist()) == set(q.column("run_id").to_pylist())
    assert Counter(q.column("error_code").to_pylist()) == want_errors
    props = raw_table.current_snapshot().summary.additional_properties
    assert props["tokenmill.records_read"] == str(c["records_read"])
    assert props["tokenmill.ingest.ledger_objects"] == str(len(cases))
    snapshot = raw_table.current_snapshot().snapshot_id

    again = run_ingest(spark, cfg)
    assert again.counts["records_read"] == 0 and again.counts["objects_skipped"] == len(cases)
    raw_table.refresh()
    assert raw_table.current_snapshot().snapshot_id == snapshot

    (tmp_path / "in" / "new.jsonl").write_text('{"id": "n1", "text": "new"}\n{"id": "n2", "text": "newer"}\n')
    third = run_ingest(spark, cfg)
    assert (third.counts["objects_read"], third.counts["raw_docs"], third.counts["quarantined"]) == (1, 2, 0)
    raw, _, _ = _tables(cfg)
    assert raw.num_rows == want_docs + 2


def test_interrupted_run_is_cleaned_before_the_next(spark, lake_config: Config, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"id": "a", "text": "x"}\nbad\n')
    cfg = _config(lake_config, folder)
    catalog = lake.open_catalog(cfg.lake)
    quarantine = lake.ensure_table(catalog, cfg.lake.namespace, "quarantine")
    lake.ensure_table(catalog, cfg.lake.namespace, "raw_docs")
    # what a run killed between its quarantine and raw_docs commits leaves behind
    row = {"error_code": ["malformed_json"], "error_detail": ["x"], "source_type": ["local"],
           "source_uri": [f"file://{folder}/a.jsonl"], "source_partition": [None], "source_offset": [1],
           "raw": [b"bad"], "raw_size": [3], "ingested_at": [None], "run_id": ["killed-run"]}
    schema = quarantine_schema.TABLE.arrow_schema
    path = lake.write_data_file(lake.data_dir(quarantine), pa.table(row, schema=schema), prefix="ingest-killed")
    lake.commit_files(quarantine, [path], lake.snapshot_summary(cfg, "ingest", "killed-run"))

    report = run_ingest(spark, cfg)
    assert report.counts["recovered_runs"] == 1
    raw, q, _ = _tables(cfg)
    assert raw.column("doc_id").to_pylist() == ["a"]
    assert q.column("run_id").to_pylist() == [raw.column("run_id")[0].as_py()]
    cleaned = [s.summary.additional_properties.get("tokenmill.ingest.cleaned_runs")
               for s in catalog.load_table((cfg.lake.namespace, "quarantine")).snapshots()]
    assert json.dumps(["killed-run"]) in cleaned
    assert "recovered_runs" not in run_ingest(spark, cfg).counts
