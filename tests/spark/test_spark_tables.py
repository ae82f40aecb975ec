"""Tables read inside tasks with pyarrow: the read units, row groups split across tasks, columns a file lacks,
materialized scratch data, and no Hadoop filesystem call left in the data path."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import lake
from pipelines.config import Config
from pipelines.lake.files.spark import ROW_GROUPS_PER_TASK, materialize, table_units
from pipelines.lake.spark import read_table_df
from schemas import TABLES

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]


def _tokens_table(cfg: Config):  # type: ignore[no-untyped-def]
    return lake.ensure_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "tokens")


def _rows(n: int, start: int = 0) -> pa.Table:
    schema = TABLES["tokens"].arrow_schema
    return pa.table({"doc_id": [f"d{i:05d}" for i in range(start, start + n)],
                     "tokens": [bytes([i % 256, 0]) for i in range(start, start + n)],
                     "n_tokens": [1] * n, "source": ["local:x"] * n}, schema=schema)


def test_a_file_of_many_row_groups_is_read_by_several_tasks_once_each(spark, lake_config: Config,
                                                                      tmp_path: Path) -> None:
    table = _tokens_table(lake_config)
    big = tmp_path / "big.parquet"
    pq.write_table(_rows(1000), big, row_group_size=100)  # 10 row groups
    small = lake.write_data_file(lake.data_dir(table), _rows(7, start=1000), prefix="small")
    assert small is not None
    lake.commit_files(table, [f"file://{big}", small], {})
    units = sorted(table_units(table))
    assert units == sorted([(f"file://{big}", g) for g in range(0, 10, ROW_GROUPS_PER_TASK)] + [(small, -1)])
    df = read_table_df(spark, table)
    assert df.rdd.getNumPartitions() == len(units)
    ids = [r["doc_id"] for r in df.select("doc_id").collect()]
    assert len(ids) == 1007 and len(set(ids)) == 1007
    assert read_table_df(spark, table, columns=("n_tokens", "doc_id")).columns == ["n_tokens", "doc_id"]


def test_columns_a_file_lacks_are_null(spark, lake_config: Config, tmp_path: Path) -> None:
    table = _tokens_table(lake_config)
    older = tmp_path / "older.parquet"
    pq.write_table(_rows(3).drop_columns(["source"]), older)
    lake.commit_files(table, [f"file://{older}"], {})
    rows = read_table_df(spark, table).orderBy("doc_id").collect()
    assert [r["doc_id"] for r in rows] == ["d00000", "d00001", "d00002"]
    assert [r["source"] for r in rows] == [None, None, None]


def test_an_empty_table_reads_as_an_empty_frame(spark, lake_config: Config) -> None:
    df = read_table_df(spark, _tokens_table(lake_config))
    assert df.count() == 0 and df.columns == TABLES["tokens"].arrow_schema.names


def test_materialize_writes_under_scratch_and_reads_back(spark, lake_config: Config) -> None:
    scratch = lake.scratch_dir(lake_config.lake, "test")
    assert scratch.startswith(lake_config.lake.scratch_uri() + "/test-")
    df = spark.range(0, 500, numPartitions=3).selectExpr("id", "cast(id as string) as s")
    back = materialize(df, f"{scratch}/x")
    assert sorted(r["id"] for r in back.collect()) == list(range(500))
    folder = Path(scratch.removeprefix("file://"))
    assert len(list(folder.rglob("*.parquet"))) == 3
    lake.remove_tree(scratch)
    assert not folder.exists()


def test_no_hadoop_filesystem_call_in_the_data_path() -> None:
    pattern = re.compile(r"\.read\.parquet\(|\.write\.(parquet|save|mode)\(|\.checkpoint\(\)|setCheckpointDir")
    found = [f"{p.relative_to(REPO)}:{i}" for pkg in ("pipelines", "dedup", "sharding", "jobs")
             for p in sorted((REPO / pkg).rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
