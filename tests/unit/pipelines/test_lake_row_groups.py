"""lake.write_data_file's row groups: pyarrow's default, or about `row_group_bytes` each (persisted steps)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import lake


def _rows(n: int) -> pa.Table:
    return pa.table({"doc_id": [f"d{i:05d}" for i in range(n)], "text": ["x" * 1000] * n})


def test_row_group_bytes_splits_a_file_into_row_groups_of_about_that_size(tmp_path: Path) -> None:
    table = _rows(4000)  # about 4 MB of Arrow data
    uri = lake.write_data_file(tmp_path.as_uri(), table, prefix="t", row_group_bytes=1 << 20)
    assert uri is not None
    meta = pq.read_metadata(uri.removeprefix("file://"))
    assert 3 <= meta.num_row_groups <= 5
    assert pq.read_table(uri.removeprefix("file://")).equals(table)


def test_default_keeps_a_small_file_in_one_row_group(tmp_path: Path) -> None:
    uri = lake.write_data_file(tmp_path.as_uri(), _rows(4000), prefix="t")
    assert uri is not None
    assert pq.read_metadata(uri.removeprefix("file://")).num_row_groups == 1
