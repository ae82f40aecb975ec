"""StepReader's lookup of a few doc_ids: exactly their rows, across files and row groups, `where` applied."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dedup.steps.spark import StepReader

pytestmark = pytest.mark.spark

SCHEMA = pa.schema([pa.field("doc_id", pa.string()), pa.field("text", pa.string()), pa.field("reason", pa.string())])


def _files(folder: Path) -> tuple[str, ...]:
    """Two files of 3,000 rows each, in row groups of 250 rows; every 7th row has a filter reason."""
    uris = []
    for f in range(2):
        n = range(3000 * f, 3000 * (f + 1))
        rows = pa.table({"doc_id": [f"d{i:05d}" for i in n], "text": [f"text of {i} " * 3 for i in n],
                         "reason": ["short" if i % 7 == 0 else None for i in n]}, schema=SCHEMA)
        pq.write_table(rows, folder / f"part-{f}.parquet", row_group_size=250)
        uris.append((folder / f"part-{f}.parquet").as_uri())
    return tuple(uris)


def test_a_lookup_gives_exactly_the_rows_of_the_ids_that_pass_where(tmp_path: Path) -> None:
    files = _files(tmp_path)
    wanted = pa.array(["d00003", "d00007", "d02999", "d03000", "d05999", "d04321", "missing", "d00003"])
    plain = StepReader(files, SCHEMA)(["doc_id", "text"], wanted).read_all()
    assert sorted(plain["doc_id"].to_pylist()) == ["d00003", "d00007", "d02999", "d03000", "d04321", "d05999"]
    assert dict(zip(plain["doc_id"].to_pylist(), plain["text"].to_pylist(), strict=True))["d04321"] == "text of 4321 " * 3
    passed = StepReader(files, SCHEMA, pc.field("reason").is_null())(["doc_id"], wanted).read_all()
    # 7 and 5999 (= 7 x 857) have a reason
    assert sorted(passed["doc_id"].to_pylist()) == ["d00003", "d02999", "d03000", "d04321"]
    assert StepReader(files, SCHEMA)(["text"], pa.array([], pa.string())).read_all().num_rows == 0
    assert StepReader(files, SCHEMA)(["doc_id"], None).read_all().num_rows == 6000
