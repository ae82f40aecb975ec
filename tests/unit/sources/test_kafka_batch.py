"""Kafka record batches: documents carry `_kafka` metadata exactly as parsing, setting and re-printing would."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from pipelines.sources.config import KafkaSource
from pipelines.sources.kafka import _batch, kafka_metadata, with_kafka_metadata

SRC = KafkaSource(bootstrap="127.0.0.1:9", topics=["t"])


def _record(offset: int, value: bytes | None, key: bytes | None = None, headers: list | None = None,
            timestamp: int | None = 1700000000000) -> ConsumerRecord:
    return ConsumerRecord("t", 3, None, offset, timestamp, 0, key, value, headers or [], None,
                          -1 if key is None else len(key), -1 if value is None else len(value), -1)


def _spelled_out(metadata: str | None, key: bytes | None, headers: list, timestamp: int | None) -> str:
    meta = json.loads(metadata) if metadata else {}
    meta["_kafka"] = kafka_metadata(key, headers, timestamp)
    return json.dumps(meta, ensure_ascii=False, separators=(",", ":"))


def test_batch_documents_errors_and_coordinates() -> None:
    records = [
        _record(10, b'{"id": "a", "text": "one", "lang": "en"}'),
        _record(11, b'{"text": "two"}', key=b"k\xff", headers=[("h", b"v"), ("bin", b"\x80")]),
        _record(12, None),
        _record(13, b'{"text": 5}'),
        _record(14, b'{"text": "own", "_kafka": 1, "z": 2}', key=b"key", timestamp=None),
    ]
    docs, bad = _batch(records, SRC, max_record_bytes=1000, raw_limit=8)
    assert docs.column("doc_id").to_pylist() == ["a", "t/3/11", "t/3/14"]
    assert docs.column("source_offset").to_pylist() == [10, 11, 14]
    assert docs.column("source_partition").to_pylist() == [3, 3, 3]
    assert docs.column("source_uri").to_pylist() == ["t", "t", "t"]
    assert docs.column("metadata").to_pylist() == [
        '{"lang":"en","_kafka":{"key":null,"headers":[],"timestamp":1700000000000}}',
        '{"_kafka":{"key":{"base64":"a/8="},"headers":[["h","v"],["bin",{"base64":"gA=="}]],'
        '"timestamp":1700000000000}}',
        '{"_kafka":{"key":"key","headers":[],"timestamp":null},"z":2}',
    ]
    assert bad.column("error_code").to_pylist() == ["empty_record", "wrong_type_text"]
    assert bad.column("source_offset").to_pylist() == [12, 13]
    assert bad.column("raw").to_pylist() == [None, b'{"text":']
    assert bad.column("raw_size").to_pylist() == [0, 11]


META = st.none() | st.dictionaries(st.sampled_from(["a", "_kafka", "é", "x\"y"]) | st.text(max_size=3).filter(lambda k: k != "id"),
                                   st.none() | st.integers() | st.text(max_size=4) | st.lists(st.booleans(), max_size=2),
                                   min_size=1, max_size=4).map(
    lambda d: json.dumps(d, ensure_ascii=False, separators=(",", ":")))


@settings(max_examples=300, deadline=None)
@given(metadata=META, key=st.none() | st.binary(max_size=6),
       headers=st.lists(st.tuples(st.text(max_size=3), st.binary(max_size=4)), max_size=2),
       timestamp=st.none() | st.integers(min_value=-1, max_value=2**62))
def test_spliced_metadata_equals_parse_set_print(metadata: str | None, key: bytes | None, headers: list,
                                                 timestamp: int | None) -> None:
    kafka_json = json.dumps(kafka_metadata(key, headers, timestamp), ensure_ascii=False, separators=(",", ":"))
    assert with_kafka_metadata(metadata, kafka_json) == _spelled_out(metadata, key, headers, timestamp)
    value = b'{"text": "x"' + (b"," + metadata[1:].encode("utf-8", "surrogatepass") if metadata else b"}")
    docs, _ = _batch([_record(0, value, key, headers, timestamp)], SRC, max_record_bytes=1 << 16, raw_limit=4)
    assert docs.column("metadata").to_pylist() == [_spelled_out(metadata, key, headers, timestamp)]


def test_a_record_that_makes_decoding_raise_is_one_decode_error_row_and_its_batch_goes_on(monkeypatch) -> None:
    from pipelines.sources import kafka

    real = kafka._decode_batch

    def poisoned(records, *args):  # type: ignore[no-untyped-def]
        if any(r.value == b'{"text": "poison"}' for r in records):
            raise RecursionError("maximum recursion depth exceeded")
        return real(records, *args)

    monkeypatch.setattr(kafka, "_decode_batch", poisoned)
    records = [_record(0, b'{"text": "a"}'), _record(1, b'{"text": "poison"}'), _record(2, b'{"text": "c"}')]
    docs, bad = _batch(records, SRC, 1 << 20, 64)
    assert docs.column("source_offset").to_pylist() == [0, 2]
    (row,) = bad.to_pylist()
    assert (row["error_code"], row["source_offset"], row["source_partition"]) == ("decode_error", 1, 3)
    assert row["error_detail"] == "RecursionError: maximum recursion depth exceeded"
    assert row["raw"] == b'{"text": "poison"}'
