"""Concurrent ingest runs on one lake: a run whose input another run committed first fails with one line and
commits nothing; runs of different sources both land (ledgers merged); a run starting inside another's commit
window leaves the live run's quarantine rows alone. The second run is started from inside the first one at a
failpoint, so the interleaving is exact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines import lake
from pipelines.config import Config
from pipelines.sources.commit import ConcurrentIngestError
from pipelines.sources.state import load_state
from pipelines.stages.ingest import spark as spark_ingest
from pipelines.stages.ingest.spark import run_ingest

pytestmark = pytest.mark.spark


def _source(folder: Path, name: str, n: int) -> dict:
    folder.mkdir(parents=True)
    lines = "".join(f'{{"id": "{name}-{i}", "text": "doc {i}"}}\n' for i in range(n)) + "not json\n"
    (folder / f"{name}.jsonl").write_text(lines)
    return {"type": "local", "path": str(folder), "name": name}


def _config(lake_config: Config, *sources: dict) -> Config:
    return Config.model_validate({**lake_config.model_dump(), "sources": list(sources)})


def _tables(cfg: Config) -> tuple[pa.Table, pa.Table]:
    catalog = lake.open_catalog(cfg.lake)
    return (lake.read_table(catalog.load_table((cfg.lake.namespace, "raw_docs"))),
            lake.read_table(catalog.load_table((cfg.lake.namespace, "quarantine"))))


def _inside(monkeypatch: pytest.MonkeyPatch, point: str, other: Callable[[], object]) -> list[object]:
    """Run `other` once when the (first) run reaches failpoint `point`; returns what it returned."""
    seen: list[object] = []

    def hook(name: str) -> None:
        if name == point and not seen:
            seen.append(None)
            seen[0] = other()

    monkeypatch.setattr(spark_ingest, "failpoint", hook)
    return seen


def _data_files(cfg: Config, table: str) -> set[str]:
    folder = Path(cfg.lake.root) / "warehouse"
    return {p.name for p in folder.rglob("*.parquet") if f"/{table}/data/" in str(p)}


def test_two_runs_of_the_same_source_write_it_once(spark, lake_config: Config, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(lake_config, _source(tmp_path / "a", "a", 50))
    other = _inside(monkeypatch, "ingest.after_tasks", lambda: run_ingest(spark, cfg))
    with pytest.raises(ConcurrentIngestError, match="committed nothing"):
        run_ingest(spark, cfg)
    assert other and other[0].counts["raw_docs"] == 50  # type: ignore[attr-defined]
    raw, q = _tables(cfg)
    assert raw.num_rows == 50 and len(set(raw.column("doc_id").to_pylist())) == 50
    assert q.num_rows == 1
    # the losing run's data files are gone: only committed files remain in the table folders
    catalog = lake.open_catalog(cfg.lake)
    committed = {f.rsplit("/", 1)[-1] for t in ("raw_docs", "quarantine")
                 for f in lake.data_files(catalog.load_table((cfg.lake.namespace, t)))}
    assert _data_files(cfg, "raw_docs") | _data_files(cfg, "quarantine") == committed
    monkeypatch.setattr(spark_ingest, "failpoint", lambda name: None)
    assert run_ingest(spark, cfg).counts["records_read"] == 0


def test_runs_of_different_sources_both_land_and_keep_both_ledgers(spark, lake_config: Config, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _source(tmp_path / "a", "a", 30), _source(tmp_path / "b", "b", 20)
    cfg_a, cfg_b, both = _config(lake_config, a), _config(lake_config, b), _config(lake_config, a, b)
    _inside(monkeypatch, "ingest.after_tasks", lambda: run_ingest(spark, cfg_b))
    report = run_ingest(spark, cfg_a)
    assert report.counts["raw_docs"] == 30
    raw, q = _tables(both)
    assert sorted({d.split("-")[0] for d in raw.column("doc_id").to_pylist()}) == ["a", "b"]
    assert raw.num_rows == 50 and q.num_rows == 2
    catalog = lake.open_catalog(both.lake)
    ledger = load_state(catalog.load_table((both.lake.namespace, "raw_docs"))).ledger
    assert sorted(u.rsplit("/", 1)[-1] for u in ledger) == ["a.jsonl", "b.jsonl"]
    monkeypatch.setattr(spark_ingest, "failpoint", lambda name: None)
    again = run_ingest(spark, both).counts
    assert again["records_read"] == 0 and again["objects_skipped"] == 2


def test_a_run_starting_inside_another_commit_window_leaves_its_quarantine_alone(
        spark, lake_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _source(tmp_path / "a", "a", 10), _source(tmp_path / "b", "b", 10)
    cfg_a, cfg_b = _config(lake_config, a), _config(lake_config, b)
    other = _inside(monkeypatch, "ingest.after_quarantine_commit", lambda: run_ingest(spark, cfg_b))
    first = run_ingest(spark, cfg_a)
    assert "recovered_runs" not in other[0].counts  # type: ignore[attr-defined]
    raw, q = _tables(cfg_a)
    assert raw.num_rows == 20
    assert q.num_rows == 2  # both runs' bad line: the live run's row was not taken for an interrupted run's
    assert first.counts["records_read"] + other[0].counts["records_read"] == raw.num_rows + q.num_rows  # type: ignore[attr-defined]


def test_the_audit_finds_a_record_ingested_twice_however_it_arose(spark, lake_config: Config, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import shutil

    from pipelines.ops.audit import audit

    monkeypatch.setattr(spark_ingest, "failpoint", lambda name: None)
    src = _source(tmp_path / "a", "a", 20)
    cfg = _config(lake_config, src)
    run_ingest(spark, cfg)
    data = tmp_path / "a" / "a.jsonl"
    data.write_text('{"id": "a-new", "text": "rewritten"}\n' + data.read_text())
    os.utime(data, ns=(1, 2))
    assert run_ingest(spark, cfg).counts["raw_docs"] == 21  # a rewritten object is read again: a new version

    def once(c: Config) -> tuple[bool, str]:
        (check,) = [c for c in audit(cfg).checks if c.name == "each input record once"]
        return check.ok, check.detail

    ok, detail = once(cfg)
    assert ok, detail
    catalog = lake.open_catalog(cfg.lake)
    raw = catalog.load_table((cfg.lake.namespace, "raw_docs"))
    first = sorted(lake.data_files(raw))[0].removeprefix("file://")
    copy = first.replace(".parquet", "-copy.parquet")
    shutil.copy(first, copy)
    lake.commit_files(raw, [f"file://{copy}"], lake.snapshot_summary(cfg, "manual", "copy"))
    ok, detail = once(cfg)
    assert not ok
    assert "record(s) ingested more than once" in detail and f"file://{data}@" in detail


def test_data_files_of_dead_runs_are_removed_and_those_of_live_runs_kept(spark, lake_config: Config, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.sources import lease

    monkeypatch.setattr(spark_ingest, "failpoint", lambda name: None)
    cfg = _config(lake_config, _source(tmp_path / "a", "a", 5))
    run_ingest(spark, cfg)
    catalog = lake.open_catalog(cfg.lake)
    raw = catalog.load_table((cfg.lake.namespace, "raw_docs"))
    data = Path(lake.data_dir(raw).removeprefix("file://"))
    committed = set(_data_files(cfg, "raw_docs"))
    dead = [data / "ingest-deadbeef-0001.parquet", data / ".ingest-deadbeef-0002.parquet.tmp"]
    live = data / "ingest-cafef00d-0003.parquet"
    for p in [*dead, live]:
        p.write_bytes(b"PAR1 half-written")
    lease._write(lease.lease_uri(raw, "cafef00d" + "0" * 24), "cafef00d" + "0" * 24, lake.table_s3(raw))  # this process: alive
    report = run_ingest(spark, cfg)
    assert report.counts["orphan_files_removed"] == 2
    assert not any(p.exists() for p in dead) and live.exists()
    assert committed <= set(_data_files(cfg, "raw_docs"))
    raw_rows, _ = _tables(cfg)
    assert raw_rows.num_rows == 5
