"""A persisted step resumed by key: every finished file of an interrupted attempt is reused, each key once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from dedup.steps.spark import FILE_NOTES, Steps

pytestmark = pytest.mark.spark

SCHEMA = pa.schema([pa.field("doc_id", pa.string()), pa.field("n", pa.int64()), pa.field("computed", pa.bool_())])


def _left(folder: Path, name: str, ids: range) -> None:
    """A file an interrupted attempt's task finished (rows not computed by the resumed run)."""
    rows = pa.table({"doc_id": [f"d{i:02d}" for i in ids], "n": list(ids), "computed": [False] * len(ids)},
                    schema=SCHEMA.with_metadata({FILE_NOTES: json.dumps({"rows": len(ids)}).encode()}))
    pq.write_table(rows, folder / name)


def test_a_resumed_step_reuses_each_finished_file_once(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    schema = SCHEMA  # the functions the tasks run are defined here: a test module is not importable there

    def _computed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield pa.RecordBatch.from_arrays([batch.column("doc_id"), batch.column("n"),
                                              pa.array([True] * batch.num_rows)], schema=schema)

    steps = Steps(spark, str(tmp_path / "steps"))
    folder = tmp_path / "steps" / "s"
    folder.mkdir(parents=True)
    _left(folder, "part-a.parquet", range(0, 10))
    _left(folder, "part-b.parquet", range(5, 15))  # a duplicate attempt's file: shares d05..d09 with part-a
    _left(folder, "part-c.parquet", range(20, 35))
    (folder / "part-d.parquet").write_bytes(b"not parquet")
    (folder / ".part-e.parquet.tmp").write_bytes(b"a task killed while writing")
    source = spark.range(40).select(F.format_string("d%02d", "id").alias("doc_id"), F.col("id").alias("n"))
    out = steps.materialize("s", lambda: source.repartition(3), transform=_computed,
                            schema=source.schema.add("computed", "boolean"), resume_by="doc_id",
                            file_notes=lambda rows: {"rows": rows.num_rows})
    rows = {r["doc_id"]: r["computed"] for r in out.collect()}
    assert out.count() == len(rows) == 40
    reused = sorted(d for d, computed in rows.items() if not computed)
    assert reused == [f"d{i:02d}" for i in [*range(0, 10), *range(20, 35)]]  # part-b is left out
    assert steps.resumed_rows == {"s": 25}
    assert steps.notes("s") == {"rows": 40}
    again = Steps(spark, str(tmp_path / "steps"))
    back = again.materialize("s", lambda: source, transform=_computed, resume_by="doc_id")
    assert again.reused == ["s"] and again.notes("s") == {"rows": 40}
    assert pc.sum(pa.array([r["n"] for r in back.collect()])).as_py() == sum(range(40))
