"""Record kernels: raw values (JSON lines, Kafka values, text objects, Parquet rows) to documents or errors.

Each decoder takes a batch and returns a `Decoded` batch of equal length: per record either a document
(`text` set, `doc_id` when the record carries one, `metadata` JSON of its other fields) or an `error_code`
(one of ERROR_CODES) with a short `error_detail`. `split_decoded` then turns a Decoded batch and the records'
coordinates into raw_docs and quarantine rows. Nothing here raises for bad records; bad arguments raise
ValueError.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# Stable quarantine error codes (counted as `quarantine_<code>`).
ERROR_CODES = (
    "malformed_json",        # not parseable as JSON (incl. NaN/Infinity, truncated lines, bad nesting)
    "invalid_utf8",          # bytes are not UTF-8
    "invalid_unicode",       # valid UTF-8/JSON escapes that encode lone surrogates
    "not_an_object",         # a JSON value that is not an object
    "missing_text",          # no text field, or null
    "wrong_type_text",       # text field is not a string
    "wrong_type_id",         # id field is not a string or integer
    "too_large",             # record over ingest.max_record_bytes
    "empty_record",          # a Kafka record with no value
    "mislabelled_compression",
    "corrupt_compression",
    "truncated_compression",
    "unreadable_parquet",
    "unknown_format",
    "object_missing",        # listed, then gone before its task read it
)

_DECODED_SCHEMA = pa.schema([
    ("doc_id", pa.large_string()), ("text", pa.large_string()), ("metadata", pa.large_string()),
    ("error_code", pa.large_string()), ("error_detail", pa.large_string()),
])


class RecordError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass
class Decoded:
    """Column lists of one decoded batch; exactly one of text / error_code is set per record."""

    doc_id: list[str | None] = field(default_factory=list)
    text: list[str | None] = field(default_factory=list)
    metadata: list[str | None] = field(default_factory=list)
    error_code: list[str | None] = field(default_factory=list)
    error_detail: list[str | None] = field(default_factory=list)

    def add_doc(self, doc_id: str | None, text: str, metadata: str | None) -> None:
        self.doc_id.append(doc_id)
        self.text.append(text)
        self.metadata.append(metadata)
        self.error_code.append(None)
        self.error_detail.append(None)

    def add_error(self, code: str, detail: str) -> None:
        self.doc_id.append(None)
        self.text.append(None)
        self.metadata.append(None)
        self.error_code.append(code)
        self.error_detail.append(detail[:200])

    def to_arrow(self) -> pa.Table:
        return pa.table([self.doc_id, self.text, self.metadata, self.error_code, self.error_detail],
                        schema=_DECODED_SCHEMA)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_unicode(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError("invalid_unicode", f"{what}: lone surrogate at {exc.start}") from None


def doc_fields(obj: Any, *, id_field: str, text_field: str) -> tuple[str | None, str, str | None]:
    """(doc_id, text, metadata JSON) of one parsed JSON record; raises RecordError for a bad record.

    The id is kept when it is a string or an integer (cast to string); metadata holds the other fields
    (None when there are none).
    """
    if not isinstance(obj, dict):
        raise RecordError("not_an_object", f"JSON {type(obj).__name__}, expected an object")
    text = obj.get(text_field)
    if text is None:
        raise RecordError("missing_text", f"no {text_field!r} field" if text_field not in obj else f"{text_field!r} is null")
    if not isinstance(text, str):
        raise RecordError("wrong_type_text", f"{text_field!r} is {type(text).__name__}")
    _check_unicode(text, text_field)
    raw_id = obj.get(id_field)
    doc_id: str | None
    if raw_id is None:
        doc_id = None
    elif isinstance(raw_id, str):
        _check_unicode(raw_id, id_field)
        doc_id = raw_id
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        doc_id = str(raw_id)
    else:
        raise RecordError("wrong_type_id", f"{id_field!r} is {type(raw_id).__name__}")
    rest = {k: v for k, v in obj.items() if k != text_field and k != id_field}
    if not rest:
        return doc_id, text, None
    try:
        meta = json.dumps(rest, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
        meta.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise RecordError("invalid_unicode", "other fields hold lone surrogates") from None
    return doc_id, text, meta


def decode_json_values(
    values: Sequence[bytes], sizes: Sequence[int], *, id_field: str, text_field: str, max_record_bytes: int
) -> Decoded:
    """Decode JSON records; `sizes[i]` is the full size of `values[i]` (which may hold only its head).

    A record over `max_record_bytes` is `too_large` without being parsed. A leading UTF-8 BOM is ignored.
    """
    if len(values) != len(sizes):
        raise ValueError(f"{len(values)} values but {len(sizes)} sizes")
    if max_record_bytes <= 0:
        raise ValueError(f"max_record_bytes={max_record_bytes}")
    out = Decoded()
    for value, size in zip(values, sizes, strict=True):
        if size > max_record_bytes:
            out.add_error("too_large", f"{size} bytes > {max_record_bytes}")
            continue
        try:
            s = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.add_error("invalid_utf8", f"byte {exc.start}: {exc.reason}")
            continue
        try:
            obj = json.loads(s.removeprefix("\ufeff"), parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            out.add_error("malformed_json", str(exc) or type(exc).__name__)
            continue
        try:
            out.add_doc(*doc_fields(obj, id_field=id_field, text_field=text_field))
        except RecordError as exc:
            out.add_error(exc.code, exc.detail)
    return out


def decode_text_values(values: Sequence[bytes | None], sizes: Sequence[int], *, max_record_bytes: int) -> Decoded:
    """Each value is one whole document (UTF-8 text); no id, no metadata. None values are `empty_record`."""
    if len(values) != len(sizes):
        raise ValueError(f"{len(values)} values but {len(sizes)} sizes")
    out = Decoded()
    for value, size in zip(values, sizes, strict=True):
        if value is None:
            out.add_error("empty_record", "no value")
        elif size > max_record_bytes:
            out.add_error("too_large", f"{size} bytes > {max_record_bytes}")
        else:
            try:
                out.add_doc(None, value.decode("utf-8").removeprefix("\ufeff"), None)
            except UnicodeDecodeError as exc:
                out.add_error("invalid_utf8", f"byte {exc.start}: {exc.reason}")
    return out


def decode_parquet_batch(
    batch: pa.RecordBatch, *, id_field: str, text_field: str, max_record_bytes: int
) -> tuple[Decoded, list[bytes | None]]:
    """Decode Parquet rows; returns the Decoded batch and, for rows in error, the row as JSON bytes (else None).

    The text column must be string-like (or binary holding UTF-8); other columns become metadata.
    """
    n = batch.num_rows
    names = batch.schema.names
    if text_field not in names:
        rows = batch.to_pylist()
        out = Decoded()
        for _ in range(n):
            out.add_error("missing_text", f"no {text_field!r} column")
        return out, [_row_json(r) for r in rows]
    rows = batch.to_pylist()
    out, raws = Decoded(), []
    for row in rows:
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


def _row_json(row: dict[str, Any]) -> bytes:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, bytes | bytearray):
            return bytes(v).decode("utf-8", "backslashreplace")
        return v

    return json.dumps({k: clean(v) for k, v in row.items()}, default=str, ensure_ascii=True).encode()


def split_decoded(
    decoded: pa.Table,
    *,
    source_type: str,
    source_uri: Sequence[str] | str,
    source_partition: Sequence[int | None] | None,
    source_offset: Sequence[int | None],
    default_ids: Sequence[str],
    raw: Sequence[bytes | None],
    raw_size: Sequence[int],
    raw_limit: int,
) -> tuple[pa.Table, pa.Table]:
    """Split a decoded batch into (raw_docs columns, quarantine columns), run_id/ingested_at not yet added.

    Documents without an id take `default_ids[i]`; quarantine rows keep `raw[i][:raw_limit]` and `raw_size[i]`.
    All sequences have the batch's length.
    """
    n = decoded.num_rows
    if raw_limit < 0:
        raise ValueError(f"raw_limit={raw_limit}")
    for name, seq in (("source_offset", source_offset), ("default_ids", default_ids), ("raw", raw),
                      ("raw_size", raw_size)):
        if len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} items for {n} records")
    uri = pa.array([source_uri] * n if isinstance(source_uri, str) else source_uri, pa.large_string())
    part = pa.array(source_partition if source_partition is not None else [None] * n, pa.int32())
    coords = {"source_type": pa.array([source_type] * n, pa.large_string()), "source_uri": uri,
              "source_partition": part, "source_offset": pa.array(source_offset, pa.int64())}
    is_doc = pc.is_null(decoded.column("error_code")).combine_chunks() if n else pa.array([], pa.bool_())
    doc_id = pc.coalesce(decoded.column("doc_id"), pa.array(default_ids, pa.large_string()))
    docs = pa.table({"doc_id": doc_id, "text": decoded.column("text"), **coords,
                     "metadata": decoded.column("metadata")}).filter(is_doc)
    bad = pc.invert(is_doc)
    flags = is_doc.to_pylist()
    raw_arr = pa.array([None if ok or r is None else r[:raw_limit] for ok, r in zip(flags, raw, strict=True)],
                       pa.large_binary())
    quarantine = pa.table({"error_code": decoded.column("error_code"), "error_detail": decoded.column("error_detail"),
                           **coords, "raw": raw_arr, "raw_size": pa.array(raw_size, pa.int64())}).filter(bad)
    return docs, quarantine
