"""The orjson fast path of JSON decoding gives what the json module gives, record for record."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.sources.plain_json import PLAIN_DEPTH, plain_doc_fields
from pipelines.sources.records import RecordError, decode_json_record, decode_json_values

KEYS = st.sampled_from(["id", "text", "a", "b", "_kafka", "é", "\u2028"]) | st.text(max_size=4)
SCALARS = (st.none() | st.booleans() | st.text(max_size=8)
           | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=8)
RECORDS = st.dictionaries(KEYS, VALUES, max_size=5) | VALUES


def _reference(value: bytes, id_field: str, text_field: str) -> tuple[str | None, ...]:
    """Per record: the json module's decoding (document fields, or the error code and detail)."""
    try:
        doc_id, text, meta = decode_json_record(value, id_field=id_field, text_field=text_field)
    except RecordError as exc:
        return None, None, None, exc.code, exc.detail[:200]
    return doc_id, text, meta, None, None


def _decoded(values: list[bytes], id_field: str = "id", text_field: str = "text") -> list[tuple[str | None, ...]]:
    dec = decode_json_values(values, [len(v) for v in values], id_field=id_field, text_field=text_field,
                             max_record_bytes=1 << 20)
    return list(zip(dec.doc_id, dec.text, dec.metadata, dec.error_code, dec.error_detail, strict=True))


@settings(max_examples=400, deadline=None)
@given(records=st.lists(RECORDS, min_size=1, max_size=6), ascii_only=st.booleans(), spaced=st.booleans(),
       fields=st.sampled_from([("id", "text"), ("text", "text"), ("a", "b")]))
def test_batch_decoding_equals_the_json_module_per_record(records: list[object], ascii_only: bool, spaced: bool,
                                                          fields: tuple[str, str]) -> None:
    seps = (", ", ": ") if spaced else (",", ":")
    values = [json.dumps(r, ensure_ascii=ascii_only, separators=seps).encode("utf-8", "surrogatepass")
              for r in records]
    assert _decoded(values, *fields) == [_reference(v, *fields) for v in values]


@settings(max_examples=300, deadline=None)
@given(record=RECORDS, at=st.integers(min_value=0), junk=st.sampled_from(
    [b"\xff", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\\ud800", b"\x00", b"\x0c", b" ", b"}", b",", b"NaN", b"1e400", b"0"]))
def test_damaged_records_decode_as_the_json_module_says(record: object, at: int, junk: bytes) -> None:
    value = json.dumps(record).encode()
    at %= len(value) + 1
    damaged = value[:at] + junk + value[at:]
    assert _decoded([damaged]) == [_reference(damaged, "id", "text")]


@pytest.mark.parametrize("value, expected", [
    (b'{"id": 184467440737095516160, "text": "t"}', ("184467440737095516160", "t", None)),
    (b'{"text": "t", "score": 1e16, "n": 1.0}', (None, "t", '{"score":1e+16,"n":1.0}')),
    (b'{"text": "t", "big": -123456789012345678901234567890}', (None, "t", '{"big":-123456789012345678901234567890}')),
    (b'\xef\xbb\xbf{"text": "bom"}', (None, "bom", None)),
])
def test_values_the_fast_path_declines_keep_the_json_module_result(value: bytes, expected: tuple) -> None:
    assert plain_doc_fields(value, "id", "text") is None
    assert _decoded([value]) == [(*expected, None, None)]


def test_nesting_at_the_plain_limit_and_far_beyond() -> None:
    inside = b'{"text": "t", "m": ' + b"[" * (PLAIN_DEPTH - 1) + b"]" * (PLAIN_DEPTH - 1) + b"}"
    assert plain_doc_fields(inside, "id", "text") is not None
    deeper = b'{"text": "t", "m": ' + b"[" * PLAIN_DEPTH + b"]" * PLAIN_DEPTH + b"}"
    assert plain_doc_fields(deeper, "id", "text") is None
    assert _decoded([deeper])[0][2] == '{"m":' + "[" * PLAIN_DEPTH + "]" * PLAIN_DEPTH + "}"
    abyss = b'{"text": "t", "m": ' + b"[" * 1010 + b"]" * 1010 + b"}"  # orjson reads it, the json module cannot
    assert _decoded([abyss])[0][3] == "too_deep"


def test_fast_path_documents() -> None:
    assert plain_doc_fields(b'{"id": 7, "text": "caf\\u00e9", "tags": ["a", null, true], "n": -3}', "id", "text") == (
        "7", "café", '{"tags":["a",null,true],"n":-3}')
    assert plain_doc_fields(b'{"text": "x", "id": null}', "id", "text") == (None, "x", None)
    for bad in (b'{"text": "\\ud800"}', b'{"text": 5}', b"[1]", b'{"id": true, "text": "x"}', b'{"text": "x"} y'):
        assert plain_doc_fields(bad, "id", "text") is None
