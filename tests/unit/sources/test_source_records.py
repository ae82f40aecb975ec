"""Record decoders and the split into raw_docs / quarantine columns."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipelines.sources.parquet_records import decode_parquet_batch
from pipelines.sources.records import (
    decode_json_values,
    decode_text_values,
    split_decoded,
)


def test_json_ids_are_strings_and_other_fields_are_metadata() -> None:
    values = [b'{"id": 12, "text": "a", "x": 1}', b'{"id": "s", "text": "b"}', b'{"text": "c"}']
    dec = decode_json_values(values, [len(v) for v in values], id_field="id", text_field="text", max_record_bytes=100)
    assert dec.doc_id == ["12", "s", None]
    assert dec.text == ["a", "b", "c"]
    assert dec.metadata == ['{"x":1}', None, None]
    assert dec.error_code == [None, None, None]


def test_json_custom_fields() -> None:
    values = [b'{"uid": "u1", "body": "hello", "id": 5}']
    dec = decode_json_values(values, [len(values[0])], id_field="uid", text_field="body", max_record_bytes=100)
    assert (dec.doc_id, dec.text, dec.metadata) == (["u1"], ["hello"], ['{"id":5}'])


def test_size_is_checked_before_parsing() -> None:
    dec = decode_json_values([b'{"te'], [10_000], id_field="id", text_field="text", max_record_bytes=100)
    assert dec.error_code == ["too_large"]


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="2 values but 1 sizes"):
        decode_json_values([b"{}", b"{}"], [2], id_field="id", text_field="text", max_record_bytes=10)


def test_text_values() -> None:
    dec = decode_text_values([b"ok", None, b"\xff"], [2, 0, 1], max_record_bytes=10)
    assert dec.text == ["ok", None, None]
    assert dec.error_code == [None, "empty_record", "invalid_utf8"]


def test_parquet_rows_keep_row_json_for_errors() -> None:
    batch = pa.RecordBatch.from_pydict({"id": [1, 2], "text": ["x", None], "lang": ["en", "fr"]})
    dec, raws = decode_parquet_batch(batch, id_field="id", text_field="text", max_record_bytes=100)
    assert dec.doc_id == ["1", None] and dec.metadata == ['{"lang":"en"}', None]
    assert dec.error_code == [None, "missing_text"]
    assert raws[0] is None and b'"lang": "fr"' in raws[1]


def test_split_decoded_conserves_records() -> None:
    values = [b'{"text": "a"}', b"nope", b'{"id": 3, "text": "c"}']
    dec = decode_json_values(values, [len(v) for v in values], id_field="id", text_field="text", max_record_bytes=100)
    docs, bad = split_decoded(dec.to_arrow(), source_type="s3", source_uri="s3://b/k", source_partition=None,
                              source_offset=[0, 1, 2], default_ids=["s3://b/k:0", "s3://b/k:1", "s3://b/k:2"],
                              raw=values, raw_size=[len(v) for v in values], raw_limit=2)
    assert docs.column("doc_id").to_pylist() == ["s3://b/k:0", "3"]
    assert docs.column("source_offset").to_pylist() == [0, 2]
    assert bad.to_pylist() == [{"error_code": "malformed_json", "error_detail": bad.column("error_detail")[0].as_py(),
                                "source_type": "s3", "source_uri": "s3://b/k", "source_partition": None,
                                "source_offset": 1, "raw": b"no", "raw_size": 4}]


def test_split_decoded_prefixes_offsets_for_missing_ids() -> None:
    values = [b'{"text": "a"}', b'{"id": "own", "text": "b"}', b"[]", b'{"text": "c"}']
    dec = decode_json_values(values, [len(v) for v in values], id_field="id", text_field="text", max_record_bytes=100)
    docs, bad = split_decoded(dec.to_arrow(), source_type="kafka", source_uri="t", source_partition=[2] * 4,
                              source_offset=[40, 41, 42, 43], id_prefix="t/2/", raw=values,
                              raw_size=[len(v) for v in values], raw_limit=100)
    assert docs.column("doc_id").to_pylist() == ["t/2/40", "own", "t/2/43"]
    assert bad.column("source_offset").to_pylist() == [42]
    assert bad.column("raw").to_pylist() == [b"[]"]


def test_split_decoded_all_good_and_all_bad_batches_keep_their_schemas() -> None:
    good, bad_values = [b'{"text": "a"}', b'{"text": "b"}'], [b"x", b"{}"]
    out = []
    for values in (good, bad_values):
        dec = decode_json_values(values, [1, 2], id_field="id", text_field="text", max_record_bytes=100)
        out.append(split_decoded(dec.to_arrow(), source_type="local", source_uri="file:///f", source_partition=None,
                                 source_offset=[0, 1], id_prefix="file:///f:", raw=values, raw_size=[1, 2],
                                 raw_limit=10))
    (docs_good, bad_good), (docs_bad, bad_bad) = out
    assert docs_good.num_rows == 2 and bad_good.num_rows == 0 and docs_bad.num_rows == 0
    assert bad_good.schema == bad_bad.schema and docs_good.schema == docs_bad.schema
    assert bad_bad.column("error_code").to_pylist() == ["malformed_json", "missing_text"]
    assert bad_bad.column("raw_size").to_pylist() == [1, 2]
    assert docs_good.column("doc_id").to_pylist() == ["file:///f:0", "file:///f:1"]
