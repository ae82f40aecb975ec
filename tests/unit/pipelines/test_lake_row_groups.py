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


def test_scratch_files_use_lz4_for_text_and_store_hash_payloads_plain(tmp_path: Path) -> None:
    table = _rows(100).append_column("signature", pa.array([bytes([i % 256]) * 512 for i in range(100)])) \
        .append_column("band_keys", pa.array([[i, -i] for i in range(100)], pa.list_(pa.int64())))
    scratch = lake.write_data_file(tmp_path.as_uri(), table, prefix="s", scratch=True)
    kept = lake.write_data_file(tmp_path.as_uri(), table, prefix="t")
    assert scratch is not None and kept is not None
    group = pq.read_metadata(scratch.removeprefix("file://")).row_group(0)
    codecs = {group.column(i).path_in_schema: group.column(i).compression for i in range(group.num_columns)}
    assert codecs == {"doc_id": "LZ4", "text": "LZ4", "signature": "UNCOMPRESSED",
                      "band_keys.list.element": "UNCOMPRESSED"}
    assert "PLAIN_DICTIONARY" not in group.column(2).encodings and "RLE_DICTIONARY" not in group.column(2).encodings
    table_group = pq.read_metadata(kept.removeprefix("file://")).row_group(0)
    assert {table_group.column(i).compression for i in range(table_group.num_columns)} == {"ZSTD"}
    assert pq.read_table(scratch.removeprefix("file://")).equals(table)
