"""Parquet rows to documents or errors, on whole Arrow columns.

Parquet rows are defined by `_decode_parquet_rows` (each row as a dict, through `records.doc_fields`);
`decode_parquet_arrow` computes the same result on whole Arrow columns and hands it the rows it does not
vectorise. Both produce what `pipelines.sources.records.split_decoded` takes.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.sources.records import _DECODED_SCHEMA, Decoded, RecordError, doc_fields


def decode_parquet_batch(
    batch: pa.RecordBatch, *, id_field: str, text_field: str, max_record_bytes: int
) -> tuple[Decoded, list[bytes | None]]:
    """Decode Parquet rows; returns the Decoded batch and, for rows in error, the row as JSON bytes (else None).

    The text column must be string-like (or binary holding UTF-8); other columns become metadata. The same
    result as `decode_parquet_arrow`, as Python lists.
    """
    decoded, raws = decode_parquet_arrow(batch, id_field=id_field, text_field=text_field,
                                         max_record_bytes=max_record_bytes)
    return Decoded(**decoded.to_pydict()), raws


def decode_parquet_arrow(
    batch: pa.RecordBatch, *, id_field: str, text_field: str, max_record_bytes: int
) -> tuple[pa.Table, list[bytes | None]]:
    """Decode Parquet rows into a table of decoded columns (doc_id, text, metadata, error_code, error_detail);
    also returns, for rows in error, the row as JSON bytes (else None).

    Every row comes out as `_decode_parquet_rows` (which runs `doc_fields` on each row) decodes it, but whole
    columns are computed with Arrow: text that is a string, or binary holding UTF-8 (a document when it has
    at most `max_record_bytes` bytes); ids that are strings, integers or null; metadata as the compact JSON
    object of the other columns, built from per-column JSON text (strings, integers, booleans and floats
    vectorised, other types encoded value by value with the json module). Rows that become errors (null,
    oversized or non-UTF-8 text, an id of another type, a non-finite float, a value json rejects) are left to
    `_decode_parquet_rows`, and so is a whole batch whose schema has no fast path (no text column, a text
    column of another type, duplicate column names, `id_field == text_field`). String columns holding bytes
    that are not UTF-8 (Parquet writers do not all check) never crash the read: such text is `invalid_utf8`,
    and an id or metadata value keeps its bad bytes escaped (`\\xff`), as quarantined raw rows do.
    """
    n = batch.num_rows
    batch = _without_views(_strings_as_bytes_where_invalid(batch, text_field))
    try:
        doc_id, text, metadata, hard = _parquet_columns(batch, id_field, text_field, max_record_bytes)
    except (_RowByRow, pa.ArrowException):  # an Arrow kernel missing for some type: the reference decides
        hard = np.ones(n, dtype=bool)
    hard_rows = np.flatnonzero(hard)
    hard_batch = None
    if 0 < hard_rows.size < n:
        hard_batch = batch.take(pa.array(hard_rows))
    if hard_rows.size == n:
        dec, all_raws = _decode_parquet_rows(batch, id_field=id_field, text_field=text_field,
                                             max_record_bytes=max_record_bytes)
        return dec.to_arrow(), all_raws
    columns = [doc_id, text, metadata, pa.nulls(n, pa.large_string()), pa.nulls(n, pa.large_string())]
    raws: list[bytes | None] = [None] * n
    if hard_batch is not None:
        dec, hard_raws = _decode_parquet_rows(hard_batch, id_field=id_field, text_field=text_field,
                                              max_record_bytes=max_record_bytes)
        mask = pa.array(hard)
        columns = [pc.replace_with_mask(col, mask, pa.array(values, pa.large_string()))
                   for col, values in zip(columns, (dec.doc_id, dec.text, dec.metadata, dec.error_code,
                                                    dec.error_detail), strict=True)]
        for i, raw in zip(hard_rows.tolist(), hard_raws, strict=True):
            raws[i] = raw
    return pa.table(columns, schema=_DECODED_SCHEMA), raws


class _RowByRow(Exception):
    """The batch has no vectorised path: `_decode_parquet_rows` decodes all of it."""


_LARGE_STRING = pa.large_string()
_JSON_VALUE = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                                default=str)


def _parquet_columns(batch: pa.RecordBatch, id_field: str, text_field: str, max_record_bytes: int
                     ) -> tuple[pa.Array, pa.Array, pa.Array, np.ndarray]:
    """(doc_id, text, metadata, hard) for every row; `hard` marks the rows left to `_decode_parquet_rows`
    (their values in the other arrays are placeholders). Raises _RowByRow for a batch without a fast path."""
    n = batch.num_rows
    names = batch.schema.names
    if text_field not in names or id_field == text_field or len(set(names)) != len(names):
        raise _RowByRow
    text, hard = _text_column(batch.column(text_field), max_record_bytes)
    if id_field in names:
        doc_id, bad_id = _id_column(batch.column(id_field))
        hard |= bad_id
    else:
        doc_id = pa.nulls(n, _LARGE_STRING)
    parts: list[pa.Array | pa.Scalar] = []
    for name in names:
        if name == text_field or name == id_field:
            continue
        fragment, bad_value = _json_fragments(batch.column(name))
        hard |= bad_value
        key = _JSON_VALUE(name)
        parts += [pa.scalar(("," if parts else "{") + key + ":", _LARGE_STRING), fragment]
    if parts:
        metadata = pc.binary_join_element_wise(*parts, pa.scalar("}", _LARGE_STRING), _EMPTY)
    else:
        metadata = pa.nulls(n, _LARGE_STRING)
    return doc_id, text, metadata, hard


_BYTES_OF = {pa.string(): pa.binary(), pa.large_string(): pa.large_binary(), pa.string_view(): pa.binary_view()}


def _strings_as_bytes_where_invalid(batch: pa.RecordBatch, text_field: str) -> pa.RecordBatch:
    """`batch` where string columns holding invalid UTF-8 are repaired for reading: the text column is viewed
    as binary (its bad rows become `invalid_utf8`), any other column has its bad bytes escaped as the
    quarantine does (backslashreplace), so an id or a metadata value keeps every byte visible."""
    columns = list(batch.columns)
    changed = False
    for i, (name, col) in enumerate(zip(batch.schema.names, columns, strict=True)):
        if pa.types.is_dictionary(col.type) and _is_string(col.type.value_type):
            col = col.dictionary_decode()
        if not _is_string(col.type):
            continue
        try:
            col.validate(full=True)
            continue
        except pa.ArrowInvalid:
            changed = True
        as_bytes = col.view(_BYTES_OF[col.type])
        columns[i] = as_bytes if name == text_field else pa.array(
            [None if v is None else v.decode("utf-8", "backslashreplace") for v in as_bytes.to_pylist()],
            col.type,
        )
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names) if changed else batch


def _plain_values(col: pa.Array) -> pa.Array:
    """`col` without dictionary encoding (its strings were checked for UTF-8 by
    `_strings_as_bytes_where_invalid`)."""
    return col.dictionary_decode() if pa.types.is_dictionary(col.type) else col


def _plain_type(t: pa.DataType) -> pa.DataType:
    """`t` with every view type (string, binary, list views; nested ones too) as its large non-view type:
    Arrow has no take kernel for views, and the values and their JSON are the same."""
    if pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary_view(t):
        return pa.large_binary()
    if pa.types.is_list_view(t) or pa.types.is_large_list_view(t) or pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(_plain_type(t.value_type)), t.list_size)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_plain_type(f.type)) for f in t])
    return t


def _without_views(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with its view-typed columns cast to their non-view types (`_plain_type`), so that rows can be
    taken from it."""
    plain = [_plain_type(f.type) for f in batch.schema]
    if all(t == f.type for t, f in zip(plain, batch.schema, strict=True)):
        return batch
    return pa.RecordBatch.from_arrays([col if col.type == t else _as_plain(col, t) for col, t in
                                       zip(batch.columns, plain, strict=True)], names=batch.schema.names)


def _as_plain(col: pa.Array, plain: pa.DataType) -> pa.Array:
    # a cast from a list view drops values (pyarrow 26 gives [["x"], [], []] for [["x"], [], ["y", "z"]]): such
    # columns (rare) are rebuilt from their values; string and binary views cast exactly
    if "list_view" in str(col.type):
        return pa.array(col.to_pylist(), plain)
    return col.cast(plain)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_binary(t: pa.DataType) -> bool:
    return (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
            or pa.types.is_fixed_size_binary(t))


def _mask(flags: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a numpy bool array, nulls as False."""
    return np.asarray(flags.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text_column(col: pa.Array, max_record_bytes: int) -> tuple[pa.Array, np.ndarray]:
    """The text as large_string, and the rows that are errors: null, not UTF-8, over `max_record_bytes`
    bytes (`doc_fields`'s unicode check cannot fail on valid UTF-8). Raises _RowByRow for other types."""
    col = _plain_values(col)
    bad = np.zeros(len(col), dtype=bool)
    if _is_string(col.type):
        text = col.cast(_LARGE_STRING)
    elif _is_binary(col.type):
        try:
            text = col.cast(_LARGE_STRING)  # validates UTF-8
        except pa.ArrowInvalid:  # rare: find the rows in Python, leave them to the reference
            bad = np.array([v is not None and not _utf8(v) for v in col.to_pylist()], dtype=bool)
            text = pc.if_else(pa.array(bad), pa.scalar(None, col.type), col).cast(_LARGE_STRING)
    else:
        raise _RowByRow
    bad |= ~_mask(text.is_valid())
    bad |= _mask(pc.greater(pc.binary_length(text), max_record_bytes))
    return text, bad


def _id_column(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Ids as large_string (integers cast, nulls kept), and the rows whose id is of another type."""
    col = _plain_values(col)
    t = col.type
    if _is_string(t) or pa.types.is_integer(t):
        ids = col.cast(_LARGE_STRING)
        if _is_string(t):  # an empty id counts as missing, as in JSON records
            ids = pc.if_else(pc.equal(ids, ""), pa.scalar(None, _LARGE_STRING), ids)
        return ids, np.zeros(len(col), dtype=bool)
    return pa.nulls(len(col), _LARGE_STRING), _mask(col.is_valid())


def _json_fragments(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Each value's JSON text as `doc_fields` writes it inside the metadata object (null for nulls), and the
    rows whose value makes that fail (the reference path quarantines them)."""
    col = _plain_values(col)
    t = col.type
    n = len(col)
    no_rows = np.zeros(n, dtype=bool)
    if pa.types.is_null(t):
        return pa.repeat(pa.scalar("null", _LARGE_STRING), n), no_rows
    if _is_string(t):
        fragments = _json_strings(col.cast(_LARGE_STRING))
    elif pa.types.is_integer(t) or pa.types.is_boolean(t):
        fragments = col.cast(_LARGE_STRING)  # Arrow and Python print integers and true/false alike
    elif pa.types.is_float32(t) or pa.types.is_float64(t):
        values = col.cast(pa.float64()).fill_null(0.0).to_numpy()
        # json writes float.__repr__; Arrow's shortest form differs (1 vs 1.0, 1e-05 vs 0.00001)
        fragments = pa.array(list(map(float.__repr__, values.tolist())), pa.string()).cast(_LARGE_STRING)
        valid = _mask(col.is_valid())
        return pc.if_else(pa.array(valid), fragments, _NULL_JSON), valid & ~np.isfinite(values)
    else:
        return _json_values(col)
    return fragments.fill_null(_NULL_JSON), no_rows


def _json_strings(col: pa.Array) -> pa.Array:
    """JSON string literals. With ensure_ascii=False, json escapes only '"', '\\' and U+0000..U+001F, so a
    string without them is itself between quotes; the others are encoded by json."""
    quoted = pc.binary_join_element_wise(_QUOTE, col, _QUOTE, _EMPTY)
    special = _mask(pc.match_substring_regex(col, r'[\x00-\x1f"\\]'))
    if special.any():
        rows = np.flatnonzero(special)
        escaped = [_JSON_VALUE(v) for v in col.take(pa.array(rows)).to_pylist()]
        quoted = pc.replace_with_mask(quoted, pa.array(special), pa.array(escaped, _LARGE_STRING))
    return quoted


def _json_values(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Any other type, value by value with the json module, as `doc_fields` encodes it (the JSON of an
    object is its members' JSON joined). Values json rejects (NaN inside a list, ...) mark their rows."""
    try:
        values = col.to_pylist()
    except Exception:  # invalid UTF-8, a date/timestamp Python cannot hold: row by row
        raise _RowByRow from None
    bad = np.zeros(len(values), dtype=bool)
    fragments: list[str] = []
    for i, value in enumerate(values):
        try:
            fragment = _JSON_VALUE(value)
            fragment.encode("utf-8")
        except Exception:  # whatever it is, the reference path meets it again on this row
            bad[i] = True
            fragment = "null"
        fragments.append(fragment)
    return pa.array(fragments, _LARGE_STRING), bad


_EMPTY = pa.scalar("", pa.large_string())
_QUOTE = pa.scalar('"', pa.large_string())
_NULL_JSON = pa.scalar("null", pa.large_string())


def _decode_parquet_rows(
    batch: pa.RecordBatch, *, id_field: str, text_field: str, max_record_bytes: int
) -> tuple[Decoded, list[bytes | None]]:
    """The reference decoder: each row as a dict, through `doc_fields`. `decode_parquet_arrow` gives the
    same result for every batch; it calls this for the rows (or batches) it does not vectorise."""
    names = batch.schema.names
    rows = _python_rows(batch)
    if text_field not in names:
        out = Decoded()
        for _ in rows:
            out.add_error("missing_text", f"no {text_field!r} column")
        return out, [_row_json(r) for r in rows]
    out, raws = Decoded(), list[bytes | None]()
    for row in rows:
        bad = row.pop(_OUT_OF_RANGE, None)
        if bad is not None:
            out.add_error("out_of_range", bad)
            raws.append(_row_json(row))
            continue
        text = row.get(text_field)
        if isinstance(text, bytes | bytearray):
            try:
                row[text_field] = text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as exc:
                out.add_error("invalid_utf8", f"{text_field!r} byte {exc.start}")
                raws.append(_row_json(row))
                continue
        if isinstance(text, str) and len(text) > max_record_bytes // 4 and len(text.encode("utf-8", "replace")) > max_record_bytes:
            out.add_error("too_large", f"{text_field!r} over {max_record_bytes} bytes")
            raws.append(_row_json(row))
            continue
        try:
            out.add_doc(*doc_fields(row, id_field=id_field, text_field=text_field))
            raws.append(None)
        except RecordError as exc:
            out.add_error(exc.code, exc.detail)
            raws.append(_row_json(row))
    return out, raws


_OUT_OF_RANGE = "\0out_of_range"  # key no column can have: marks a row holding a value Python cannot hold


def _python_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows as dicts. A value Python cannot hold (a date or timestamp past year 9999) is replaced by
    Arrow's text for it, and its row gets the `_OUT_OF_RANGE` key naming the column."""
    try:
        return batch.to_pylist()
    except (OverflowError, ValueError, ArithmeticError):
        pass
    columns = batch.schema.names
    rows: list[dict[str, Any]] = []
    for i in range(batch.num_rows):
        row: dict[str, Any] = {}
        for name, col in zip(columns, batch.columns, strict=True):
            try:
                row[name] = col[i].as_py()
            except (OverflowError, ValueError, ArithmeticError) as exc:
                try:
                    row[name] = col.slice(i, 1).cast(pa.string())[0].as_py()
                except pa.ArrowException:
                    row[name] = None
                row.setdefault(_OUT_OF_RANGE, f"column {name!r}: {type(exc).__name__}: {exc}")
        rows.append(row)
    return rows


def _row_json(row: dict[str, Any]) -> bytes:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, bytes | bytearray):
            return bytes(v).decode("utf-8", "backslashreplace")
        return v

    return json.dumps({k: clean(v) for k, v in row.items()}, default=str, ensure_ascii=True).encode()
