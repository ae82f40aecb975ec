"""The vectorised Parquet decoder: the same documents, metadata text, error codes and quarantine bytes as the
row-by-row reference, on batches of many shapes."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.sources.config import LocalSource
from pipelines.sources.objects import ReadOptions, list_local, read_object
from pipelines.sources.parquet_records import (
    _decode_parquet_rows,
    decode_parquet_arrow,
    decode_parquet_batch,
)

TEXTS = [
    "", "plain words", "café 日本語", "emoji \U0001f600 and more", 'quote " and \\ backslash',
    "ctrl \x00\x01\x1f\t\n\r\b\f end", "\u2028\u2029\x7f", "\ufeffbom first", "\ufffe\uffff\U0010ffff", "x" * 70,
    "é" * 40,  # 80 bytes, 40 characters
]
BAD_UTF8 = [b"\xff", b"ok\xc3", b"\xed\xa0\x80 encoded surrogate", b"caf\xe9"]
MAX_BYTES = 64


def _pick(rng: np.random.Generator, pool: list[Any], n: int, null_p: float) -> list[Any]:
    return [None if rng.random() < null_p else pool[int(rng.integers(len(pool)))] for _ in range(n)]


def _floats(rng: np.random.Generator, n: int, odd_p: float) -> list[float | None]:
    odd = [float("nan"), float("inf"), -float("inf")]
    plain = [0.0, -0.0, 1.0, 0.1, 1e16, 1e15, 1e-5, 1e-4, 5e-324, 1.7976931348623157e308, 12345.678, -2.5]
    out: list[float | None] = []
    for _ in range(n):
        r = rng.random()
        out.append(None if r < 0.1 else odd[int(rng.integers(3))] if r < 0.1 + odd_p else
                   plain[int(rng.integers(len(plain)))] if r < 0.5 else float(rng.normal() * 10.0 ** int(rng.integers(-8, 20))))
    return out


def _text_column(rng: np.random.Generator, n: int) -> pa.Array | None:
    kind = rng.choice(["string", "large_string", "binary", "large_binary", "dict", "view", "int", "null", "none"],
                      p=[0.25, 0.1, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05, 0.1])
    values = _pick(rng, TEXTS, n, 0.1)
    if kind == "none":
        return None
    if kind == "int":
        return pa.array(_pick(rng, [1, 2, 3], n, 0.3), pa.int64())
    if kind == "null":
        return pa.nulls(n)
    if kind in ("binary", "large_binary"):
        raw = [None if v is None else BAD_UTF8[int(rng.integers(4))] if rng.random() < 0.15 else v.encode()
               for v in values]
        return pa.array(raw, pa.binary() if kind == "binary" else pa.large_binary())
    if kind == "dict":
        return pa.array(values, pa.string()).dictionary_encode()
    typ = {"string": pa.string(), "large_string": pa.large_string(), "view": pa.string_view()}[str(kind)]
    return pa.array(values, typ)


def _id_column(rng: np.random.Generator, n: int) -> pa.Array | None:
    kind = str(rng.choice(["string", "int64", "int32", "uint64", "float", "bool", "binary", "null", "dict",
                           "timestamp", "none"]))
    if kind == "none":
        return None
    if kind == "null":
        return pa.nulls(n)
    pools: dict[str, tuple[list[Any], pa.DataType]] = {
        "string": (["a", "doc-1", "", "日本", 'q"\\'], pa.string()),
        "int64": ([0, -5, 2**62, 17], pa.int64()),
        "int32": ([1, -2**31, 7], pa.int32()),
        "uint64": ([2**64 - 1, 0, 3], pa.uint64()),
        "float": ([1.5, 2.0], pa.float64()),
        "bool": ([True, False], pa.bool_()),
        "binary": ([b"id", b"\xff"], pa.binary()),
        "dict": (["x", "y"], pa.string()),
        "timestamp": ([dt.datetime(2024, 1, 2, 3, 4, 5)], pa.timestamp("us")),
    }
    pool, typ = pools[kind]
    arr = pa.array(_pick(rng, pool, n, 0.3), typ)
    return arr.dictionary_encode() if kind == "dict" else arr


def _meta_columns(rng: np.random.Generator, n: int) -> dict[str, pa.Array]:
    ts = [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(1999, 12, 31, 23, 59, 59, 123456), dt.datetime(1, 1, 1)]
    makers: dict[str, Callable[[], pa.Array]] = {
        "title": lambda: pa.array(_pick(rng, TEXTS + ["a\nb", 'say "hi"'], n, 0.2), pa.string()),
        "lang": lambda: pa.array(_pick(rng, ["en", "fr", "de"], n, 0.1), pa.large_string()),
        "count": lambda: pa.array(_pick(rng, [0, 1, -7, 2**63 - 1], n, 0.2), pa.int64()),
        "small": lambda: pa.array(_pick(rng, [0, 255], n, 0.2), pa.uint8()),
        "score": lambda: pa.array(_floats(rng, n, 0.05), pa.float64()),
        "score32": lambda: pa.array(_floats(rng, n, 0.02), pa.float32()),
        "fine": lambda: pa.array(_floats(rng, n, 0.0), pa.float64()),
        "flag": lambda: pa.array(_pick(rng, [True, False], n, 0.2), pa.bool_()),
        "when": lambda: pa.array(_pick(rng, ts, n, 0.2), pa.timestamp("us")),
        "when_ns": lambda: pa.array(_pick(rng, [0, 1, 10**18 + 123], n, 0.2), pa.timestamp("ns")),
        "when_tz": lambda: pa.array(_pick(rng, ts[:2], n, 0.2), pa.timestamp("ms", tz="Europe/Paris")),
        "day": lambda: pa.array(_pick(rng, [dt.date(2020, 2, 29)], n, 0.2), pa.date32()),
        "price": lambda: pa.array(_pick(rng, [decimal.Decimal("1.50"), decimal.Decimal("-0.01")], n, 0.2),
                                  pa.decimal128(10, 2)),
        "tags": lambda: pa.array(_pick(rng, [["a", 'b"'], [], ["\n"]], n, 0.2), pa.list_(pa.string())),
        "vec": lambda: pa.array(_pick(rng, [[1.0, 2.5], [float("nan")], []], n, 0.2), pa.list_(pa.float64())),
        "info": lambda: pa.array(_pick(rng, [{"a": 1, "b": "x"}, {"a": None, "b": "日"}], n, 0.2),
                                 pa.struct([("a", pa.int64()), ("b", pa.string())])),
        "attrs": lambda: pa.array(_pick(rng, [[("k", 1)], []], n, 0.2), pa.map_(pa.string(), pa.int64())),
        "blob": lambda: pa.array(_pick(rng, [b"\x00\xff", b"ok"], n, 0.2), pa.binary()),
        "nothing": lambda: pa.nulls(n),
        "kind": lambda: pa.array(_pick(rng, ["web", "book"], n, 0.2), pa.string()).dictionary_encode(),
        "clé \"x\"\n": lambda: pa.array(_pick(rng, [1], n, 0.5), pa.int16()),
    }
    chosen = rng.choice(list(makers), size=int(rng.integers(0, 5)), replace=False)
    return {str(name): makers[str(name)]() for name in chosen}


def _random_batch(seed: int) -> pa.RecordBatch:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    cols = _meta_columns(rng, n)
    for name, col in (("text", _text_column(rng, n)), ("id", _id_column(rng, n))):
        if col is not None:
            cols[name] = col
    order = list(cols)
    rng.shuffle(order)
    return pa.RecordBatch.from_pydict({k: cols[k] for k in order})


def _assert_same_as_reference(batch: pa.RecordBatch, **kw: Any) -> pa.Table:
    kw = {"id_field": "id", "text_field": "text", "max_record_bytes": MAX_BYTES, **kw}
    want, want_raws = _decode_parquet_rows(batch, **kw)
    got, got_raws = decode_parquet_arrow(batch, **kw)
    assert got.schema == want.to_arrow().schema
    for name in got.column_names:
        assert got.column(name).to_pylist() == getattr(want, name), name
    assert got_raws == want_raws
    dec, raws = decode_parquet_batch(batch, **kw)
    assert dec == want and raws == want_raws
    return got


@pytest.mark.parametrize("seed", range(400))
def test_random_batches_decode_as_the_reference_does(seed: int) -> None:
    _assert_same_as_reference(_random_batch(seed))


@pytest.mark.parametrize("seed", range(0, 400, 20))
def test_random_batches_read_back_from_parquet_decode_as_the_reference_does(seed: int) -> None:
    buf = io.BytesIO()
    batch = _random_batch(seed)
    pq.write_table(pa.Table.from_batches([batch]), buf)
    for part in pq.ParquetFile(io.BytesIO(buf.getvalue())).iter_batches(batch_size=7):
        _assert_same_as_reference(part)


def test_the_random_batches_take_both_paths_and_every_error_code() -> None:
    codes: set[str] = set()
    mixed = 0
    for seed in range(400):
        got = decode_parquet_arrow(_random_batch(seed), id_field="id", text_field="text",
                                   max_record_bytes=MAX_BYTES)[0]
        errors = got.column("error_code").to_pylist()
        codes |= {c for c in errors if c}
        mixed += 0 < sum(c is not None for c in errors) < got.num_rows
    assert codes == {"missing_text", "wrong_type_text", "invalid_utf8", "too_large", "wrong_type_id",
                     "invalid_unicode"}
    assert mixed >= 50


def test_same_field_for_id_and_text_and_duplicate_columns() -> None:
    batch = pa.RecordBatch.from_pydict({"text": ["a", None], "x": [1, 2]})
    got = _assert_same_as_reference(batch, id_field="text")
    assert got.column("doc_id").to_pylist() == ["a", None]
    dup = pa.RecordBatch.from_arrays([pa.array(["a"]), pa.array(["b"]), pa.array([1])], names=["text", "m", "m"])
    assert _assert_same_as_reference(dup).column("metadata").to_pylist() == ['{"m":1}']


def test_empty_batch() -> None:
    got = _assert_same_as_reference(pa.RecordBatch.from_pydict({"text": pa.array([], pa.string())}))
    assert got.num_rows == 0


def test_metadata_is_compact_json_of_the_other_columns() -> None:
    batch = pa.RecordBatch.from_pydict({
        "title": ['say "hi"\n', "plain"], "id": [7, None], "text": ["a", "b"], "score": [1.0, 1e-05],
        "n": pa.array([3, None], pa.int32()), "flag": [True, False], "tags": [["x"], None]})
    got, raws = decode_parquet_arrow(batch, id_field="id", text_field="text", max_record_bytes=100)
    assert got.column("doc_id").to_pylist() == ["7", None]
    assert got.column("metadata").to_pylist() == [
        '{"title":"say \\"hi\\"\\n","score":1.0,"n":3,"flag":true,"tags":["x"]}',
        '{"title":"plain","score":1e-05,"n":null,"flag":false,"tags":null}']
    assert got.column("error_code").null_count == 2 and raws == [None, None]


def test_errors_keep_todays_codes_details_and_row_json() -> None:
    batch = pa.RecordBatch.from_pydict({
        "text": pa.array([b"ok", b"caf\xe9", b"x" * 20, None, b"fine"], pa.binary()),
        "id": pa.array([1.5, None, None, None, None]), "score": [0.5, 0.5, 0.5, 0.5, float("nan")]})
    got, raws = decode_parquet_arrow(batch, id_field="id", text_field="text", max_record_bytes=10)
    assert got.column("error_code").to_pylist() == ["wrong_type_id", "invalid_utf8", "too_large", "missing_text",
                                                    "invalid_unicode"]
    assert got.column("error_detail").to_pylist() == ["'id' is float", "'text' byte 3", "'text' over 10 bytes",
                                                      "'text' is null", "other fields hold lone surrogates"]
    assert [json.loads(r) for r in raws if r is not None] == [
        {"text": "ok", "id": 1.5, "score": 0.5}, {"text": "caf\\xe9", "id": None, "score": 0.5},
        {"text": "x" * 20, "id": None, "score": 0.5}, {"text": None, "id": None, "score": 0.5},
        {"text": "fine", "id": None, "score": "nan"}]
    assert got.column("text").null_count == 5


def test_string_column_with_invalid_utf8_no_longer_raises() -> None:
    bad = pa.array([b"ok", b"\xff"], pa.binary()).view(pa.string())
    batch = pa.RecordBatch.from_pydict({"text": pa.array(["a", "b"]), "title": bad})
    with pytest.raises(UnicodeDecodeError):  # the row-by-row reference reads values in Python
        _decode_parquet_rows(batch, id_field="id", text_field="text", max_record_bytes=10)
    table, _ = decode_parquet_arrow(batch, id_field="id", text_field="text", max_record_bytes=10)
    assert table.column("metadata").to_pylist() == ['{"title":"ok"}', '{"title":"\\\\xff"}']


def test_json_quotes_strings_without_quote_backslash_or_controls_verbatim() -> None:
    every = "".join(chr(c) for c in range(0x20, 0x110000) if not 0xD800 <= c < 0xE000 and chr(c) not in '"\\')
    assert json.dumps(every, ensure_ascii=False) == f'"{every}"'


def test_object_reader_quarantines_parquet_rows_at_their_offsets(tmp_path: Path) -> None:
    table = pa.table({"id": ["a", "b", None, "d", "e"], "text": ["one", None, "three", "four", None],
                      "lang": ["en", "fr", "de", "en", "it"]})
    pq.write_table(table, tmp_path / "p.parquet")
    ref = list_local(LocalSource(path=str(tmp_path / "p.parquet")))[0]
    docs, bad = zip(*read_object(ref, "local", ReadOptions(batch_rows=2, raw_limit=12)), strict=True)
    docs_t, bad_t = pa.concat_tables(docs), pa.concat_tables(bad)
    assert docs_t.column("doc_id").to_pylist() == ["a", f"{ref.uri}:2", "d"]
    assert docs_t.column("metadata").to_pylist() == ['{"lang":"en"}', '{"lang":"de"}', '{"lang":"en"}']
    assert docs_t.column("source_offset").to_pylist() == [0, 2, 3]
    assert bad_t.column("source_offset").to_pylist() == [1, 4]
    assert bad_t.column("raw").to_pylist() == [b'{"id": "b", ', b'{"id": "e", ']
    assert bad_t.column("raw_size").to_pylist() == [len(b'{"id": "b", "text": null, "lang": "fr"}')] * 2


def test_float_metadata_prints_as_json_does_for_any_bit_pattern() -> None:
    rng = np.random.default_rng(5)
    values = rng.integers(0, 2**63, size=20_000, dtype=np.uint64).view(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        narrow = values.astype(np.float32)
    batch = pa.RecordBatch.from_pydict({"text": ["t"] * len(values), "x": values, "y": narrow})
    _assert_same_as_reference(batch)


@pytest.fixture
def row_by_row(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the batches handed to the row-by-row reference, in call order."""
    from pipelines.sources import parquet_records as records

    seen: list[int] = []
    reference = records._decode_parquet_rows

    def counting(batch: pa.RecordBatch, **kw: Any) -> Any:
        seen.append(batch.num_rows)
        return reference(batch, **kw)

    monkeypatch.setattr(records, "_decode_parquet_rows", counting)
    return seen


def test_ordinary_batches_are_not_decoded_row_by_row(row_by_row: list[int]) -> None:
    seen = row_by_row
    batch = pa.RecordBatch.from_pydict({
        "id": pa.array([1, 2, 3], pa.int32()), "text": pa.array([b"a", b"b", b"c"], pa.large_binary()),
        "title": ['"q"', "\t", None], "lang": pa.array(["en", "fr", "en"]).dictionary_encode(),
        "score": [0.5, None, 2.0], "n": pa.array([1, None, 3], pa.uint64()), "ok": [True, None, False],
        "when": pa.array([0, 1, None], pa.timestamp("s"))})
    got, _ = decode_parquet_arrow(batch, id_field="id", text_field="text", max_record_bytes=10)
    assert seen == []
    assert got.column("metadata").to_pylist()[1] == (
        '{"title":"\\t","lang":"fr","score":null,"n":null,"ok":null,"when":"1970-01-01 00:00:01"}')
    batch = batch.set_column(2, "title", pa.array(["x", None, "y"]))
    bad = batch.set_column(4, "score", pa.array([0.5, float("inf"), 2.0]))
    got, raws = decode_parquet_arrow(bad, id_field="id", text_field="text", max_record_bytes=10)
    assert seen == [1]  # only the row with the infinite score
    assert got.column("error_code").to_pylist() == [None, "invalid_unicode", None]
    assert raws[0] is None and raws[1] is not None and b'"score": "inf"' in raws[1]


def test_view_typed_columns_take_the_fast_path_and_only_error_rows_go_row_by_row(
    row_by_row: list[int],
) -> None:
    seen = row_by_row
    # view types (which Arrow cannot take rows from) are read as their plain types: one error row, one row slow
    batch = pa.RecordBatch.from_pydict({
        "id": ["a", "b", "c"], "text": ["one", None, "three"], "lang": pa.array(["en", "fr", "de"], pa.string_view()),
        "tags": pa.array([["x"], [], ["y", "z"]], pa.list_view(pa.string_view()))})
    got, raws = decode_parquet_arrow(batch, id_field="id", text_field="text", max_record_bytes=10)
    assert seen == [1]
    assert got.column("error_code").to_pylist() == [None, "missing_text", None]
    assert got.column("metadata").to_pylist() == ['{"lang":"en","tags":["x"]}', None, '{"lang":"de","tags":["y","z"]}']
    assert raws[0] is None and raws[1] is not None and raws[2] is None


def test_string_columns_with_invalid_utf8_never_crash_the_read() -> None:
    # a string column whose bytes are not UTF-8 (some Parquet writers do not check): values a, \xffb, c\xfe
    offsets = pa.py_buffer(np.array([0, 1, 3, 5], dtype=np.int32).tobytes())
    bad = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(b"a\xffbc\xfe")])
    good = pa.array(["t1", "t2", "t3"])

    def decode(**cols: pa.Array) -> list[dict]:
        table, raws = decode_parquet_arrow(
            pa.RecordBatch.from_pydict(cols), id_field="id", text_field="text", max_record_bytes=1000
        )
        return [{**row, "raw": raw} for row, raw in zip(table.to_pylist(), raws, strict=True)]

    as_text = decode(text=bad, id=pa.array(["x", "y", "z"]))
    assert [r["error_code"] for r in as_text] == [None, "invalid_utf8", "invalid_utf8"]
    assert as_text[0]["text"] == "a" and as_text[1]["raw"] == b'{"text": "\\\\xffb", "id": "y"}'
    as_id = decode(text=good, id=bad)
    assert [r["doc_id"] for r in as_id] == ["a", "\\xffb", "c\\xfe"]
    assert all(r["error_code"] is None for r in as_id)
    as_meta = decode(text=good, meta=bad)
    assert [r["metadata"] for r in as_meta] == ['{"meta":"a"}', '{"meta":"\\\\xffb"}', '{"meta":"c\\\\xfe"}']
