"""A lake whose warehouse and scratch are on S3 (moto), reached through `lake.s3` alone: pyiceberg, the tasks
that read and write tables, and curate's scratch and checkpoints get the endpoint from the config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines import lake
from pipelines.config import load_config
from pipelines.stages import run_stage
from pipelines.storage import S3Options, filesystem, s3_client

pytestmark = [pytest.mark.integration, pytest.mark.spark]

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"


def test_s3_warehouse_and_scratch_from_the_lake_config(spark, s3_endpoint: str, tmp_path: Path) -> None:
    # nothing in the environment names the endpoint: only lake.s3 does
    assert not os.environ.get("AWS_ENDPOINT_URL") and not os.environ.get("AWS_ENDPOINT_URL_S3")
    s3_client(S3Options(endpoint=s3_endpoint)).create_bucket(Bucket="lake-s3")
    cfg = load_config(None, [
        f"lake.root={tmp_path / 'lake'}", "lake.warehouse=s3://lake-s3/warehouse", f"lake.s3.endpoint={s3_endpoint}",
        f"sources=[{{type: local, path: '{TINY / 'input'}'}}]", "curate.filters=[{name: length, min_words: 3}]",
    ])
    props = lake.open_catalog(cfg.lake).properties
    assert props["s3.endpoint"] == s3_endpoint  # pyiceberg reads no AWS_ENDPOINT_URL: it must be a property

    ingest = run_stage("ingest", cfg, spark)
    # the one-task plan (no driver plan): the task reads the persisted step's columns from S3 itself
    one_task = run_stage("curate", cfg.model_copy(update={"curate": cfg.curate.model_copy(update={
        "dedup": cfg.curate.dedup.model_copy(update={"driver_max_bytes": 0})})}), spark)
    assert (one_task.counts["dedup_one_task"], one_task.counts["dedup_on_driver"]) == (1, 0)
    decided_in_task = _decisions(cfg)
    # a budget changes no decision, so it alone rebuilds nothing: other params (no component comes near
    # max_cluster here, so they decide the same) make the full rebuild, by the driver plan
    assert run_stage("curate", cfg, spark).skipped
    cfg = cfg.model_copy(update={"curate": cfg.curate.model_copy(update={
        "dedup": cfg.curate.dedup.model_copy(update={"max_cluster": 999})})})
    curate = run_stage("curate", cfg, spark)

    catalog = lake.open_catalog(cfg.lake)
    raw = catalog.load_table(("tokenmill", "raw_docs"))
    decisions = catalog.load_table(("tokenmill", "doc_decisions"))
    clean = catalog.load_table(("tokenmill", "clean_docs"))
    assert all(f.startswith("s3://lake-s3/warehouse/") for t in (raw, decisions, clean)
               for f in lake.data_files(t))
    n_raw = lake.read_table(raw, ("doc_id",)).num_rows
    assert n_raw == ingest.counts["raw_docs"] > 0
    assert lake.read_table(decisions, ("doc_id",)).num_rows == n_raw == curate.counts["raw_docs"]
    assert curate.counts["kept"] + curate.counts["filtered"] + curate.counts["duplicate"] == n_raw
    assert curate.counts["duplicate"] >= 7  # the corpus plants 3 exact and 4 near duplicates
    # deduplicated on the driver, which read the persisted step's columns from S3 itself (Steps.reader):
    # the same decisions as the one task's
    assert (curate.counts["dedup_one_task"], curate.counts["dedup_on_driver"]) == (1, 1)
    assert _decisions(cfg) == decided_in_task
    assert {k: v for k, v in one_task.counts.items() if k != "dedup_on_driver"} == \
        {k: v for k, v in curate.counts.items() if k != "dedup_on_driver"}
    assert lake.read_table(clean, ("doc_id",)).num_rows == curate.counts["kept"]
    # the run's scratch (filtered rows, decisions, dedup checkpoints) went to S3 and was removed
    assert cfg.lake.scratch_uri() == "s3://lake-s3/warehouse/_scratch"
    fs, path = filesystem(cfg.lake.scratch_uri(), S3Options(endpoint=s3_endpoint))
    from pyarrow import fs as pafs

    left = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    assert [i.path for i in left if i.type == pafs.FileType.File] == []


def _decisions(cfg) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    table = lake.open_catalog(cfg.lake).load_table(("tokenmill", "doc_decisions"))
    rows = lake.read_table(table, ("doc_id", "decision", "reason", "kept_doc_id", "similarity", "cluster_size"))
    return sorted(zip(*(rows[c].to_pylist() for c in rows.column_names), strict=True), key=str)


def test_postgresql_catalog_with_an_s3_warehouse(spark, s3_endpoint: str, postgres, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`lake.catalog` on a PostgreSQL server (password from the environment): the stage commits there, a
    second catalog client sees its snapshot and ledger, a re-run commits nothing, no SQLite catalog appears and
    the password shows nowhere."""
    from pyiceberg.catalog import load_catalog

    from pipelines.cli.tables import print_reports

    monkeypatch.setenv("TM_TEST_PG_PASSWORD", postgres.password)
    s3_client(S3Options(endpoint=s3_endpoint)).create_bucket(Bucket="lake-pg")
    cfg = load_config(None, [
        f"lake.root={tmp_path / 'lake'}", "lake.warehouse=s3://lake-pg/warehouse", f"lake.s3.endpoint={s3_endpoint}",
        f"lake.catalog={{type: sql, uri: '{postgres.uri('${env:TM_TEST_PG_PASSWORD}')}'}}",
        f"sources=[{{type: local, path: '{TINY / 'input'}'}}]",
    ])
    with caplog.at_level("DEBUG"):
        report = run_stage("ingest", cfg, spark)
    assert report.counts["raw_docs"] > 0

    other = load_catalog(cfg.lake.catalog_name, type="sql", uri=postgres.uri(), **{"s3.endpoint": s3_endpoint})
    raw = other.load_table(("tokenmill", "raw_docs"))
    assert raw.current_snapshot().snapshot_id == report.snapshots["raw_docs"]
    assert lake.read_table(raw, ("doc_id",)).num_rows == report.counts["raw_docs"]
    assert all(f.startswith("s3://lake-pg/warehouse/") for f in lake.data_files(raw))
    assert not (tmp_path / "lake" / "catalog.db").exists()

    again = run_stage("ingest", cfg, spark)  # the object ledger, read back from PostgreSQL: nothing new
    assert again.snapshots["raw_docs"] == report.snapshots["raw_docs"]
    assert other.load_table(("tokenmill", "raw_docs")).current_snapshot().snapshot_id == report.snapshots["raw_docs"]

    print_reports([report, again], cfg)
    printed = capsys.readouterr().out
    assert f"127.0.0.1:{postgres.port}" in printed.replace("\n", "")
    assert postgres.password not in printed + caplog.text
