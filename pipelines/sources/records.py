"""Record kernels: raw values (JSON lines, Kafka values, text objects, Parquet rows) to documents or errors.

Each decoder takes a batch and returns a `Decoded` batch of equal length: per record either a document
(`text` set, `doc_id` when the record carries one, `metadata` JSON of its other fields) or an `error_code`
(one of ERROR_CODES) with a short `error_detail`. `split_decoded` then turns a Decoded batch and the records'
coordinates into raw_docs and quarantine rows. Nothing here raises for bad records; bad arguments raise
ValueError.

JSON records are defined by the standard library's json module (`decode_json_record`); `decode_json_values`
takes orjson's fast path (`plain_json`) for the records where both give the same result, and the json module
for every other record, so error codes and metadata text do not depend on which path a record took.
Parquet rows are decoded in `pipelines.sources.parquet_records`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.sources.plain_json import plain_doc_fields

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
    "object_missing",        # written by older versions only: a missing object is now retried, then deferred
    "too_deep",              # JSON nested deeper than MAX_JSON_DEPTH
    "out_of_range",          # a Parquet value Python cannot hold (a timestamp or date past year 9999)
    "trailing_garbage",      # bytes after the last complete gzip member / zstd frame (everything before is read)
    "expansion_limit",       # the object decompressed to more than ingest.max_expansion times its size
    "read_error",            # any other exception while reading an object (class and message in the detail)
    "decode_error",          # any other exception while decoding one record (class and message in the detail)
)

# Nesting a record may have (objects and arrays, the record itself counting as 1). Deeper records are
# `too_deep`: later stages parse metadata again, and Python's recursion limit must never be what stops them.
MAX_JSON_DEPTH = 100

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


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


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
    if raw_id is None or raw_id == "":
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


def decode_json_record(value: bytes, *, id_field: str, text_field: str) -> tuple[str | None, str, str | None]:
    """(doc_id, text, metadata JSON) of one JSON record, read with the standard library's json module.

    This defines what a JSON record becomes. Raises RecordError (`invalid_utf8`, `malformed_json`, or one of
    `doc_fields`'s codes) for a bad record. A leading UTF-8 BOM is ignored.
    """
    try:
        s = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError("invalid_utf8", f"byte {exc.start}: {exc.reason}") from None
    try:
        obj = json.loads(s.removeprefix("\ufeff"), parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise RecordError("too_deep", f"nested deeper than the parser's recursion limit (> {MAX_JSON_DEPTH})"
                          ) from None
    except ValueError as exc:
        raise RecordError("malformed_json", str(exc) or type(exc).__name__) from None
    depth = json_depth(obj, MAX_JSON_DEPTH)
    if depth > MAX_JSON_DEPTH:
        raise RecordError("too_deep", f"nested deeper than {MAX_JSON_DEPTH} levels")
    return doc_fields(obj, id_field=id_field, text_field=text_field)


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, `[]` is 1), counted without recursion and
    only up to `limit + 1`.

    >>> json_depth({"a": [1, {"b": []}]}, 10), json_depth([[[[]]]], 2)
    (4, 3)
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            depth += 1
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
            stack.extend((v, depth) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def decode_json_values(
    values: Sequence[bytes | None], sizes: Sequence[int], *, id_field: str, text_field: str, max_record_bytes: int
) -> Decoded:
    """Decode JSON records; `sizes[i]` is the full size of `values[i]` (which may hold only its head).

    A None value is `empty_record`; a record over `max_record_bytes` is `too_large` without being parsed.
    Each record is tried with `plain_doc_fields` (orjson) first; every record it declines is decoded by
    `decode_json_record`, so the result is the json module's for every record, only faster.
    """
    if len(values) != len(sizes):
        raise ValueError(f"{len(values)} values but {len(sizes)} sizes")
    if max_record_bytes <= 0:
        raise ValueError(f"max_record_bytes={max_record_bytes}")
    out = Decoded()
    add_id, add_text, add_meta = out.doc_id.append, out.text.append, out.metadata.append
    add_code, add_detail = out.error_code.append, out.error_detail.append
    for value, size in zip(values, sizes, strict=True):
        if value is None:
            out.add_error("empty_record", "no value")
            continue
        if size > max_record_bytes:
            out.add_error("too_large", f"{size} bytes > {max_record_bytes}")
            continue
        try:
            doc = plain_doc_fields(value, id_field, text_field)
            if doc is None:
                doc = decode_json_record(value, id_field=id_field, text_field=text_field)
        except RecordError as exc:
            out.add_error(exc.code, exc.detail)
            continue
        except Exception as exc:  # whatever it is, it stays with this record
            out.add_error("decode_error", f"{type(exc).__name__}: {exc}")
            continue
        add_id(doc[0])
        add_text(doc[1])
        add_meta(doc[2])
        add_code(None)
        add_detail(None)
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


def split_decoded(
    decoded: pa.Table,
    *,
    source_type: str,
    source_uri: Sequence[str] | str,
    source_partition: Sequence[int | None] | None,
    source_offset: Sequence[int | None],
    raw: Sequence[bytes | None],
    raw_size: Sequence[int],
    raw_limit: int,
    id_prefix: str = "",
    default_ids: Sequence[str] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Split a decoded batch into (raw_docs columns, quarantine columns), run_id/ingested_at not yet added.

    Documents without an id take `default_ids[i]` when given, else `id_prefix` followed by their offset.
    Quarantine rows keep `raw[i][:raw_limit]` and `raw_size[i]`. All sequences have the batch's length.
    """
    n = decoded.num_rows
    if raw_limit < 0:
        raise ValueError(f"raw_limit={raw_limit}")
    for name, seq in (("source_offset", source_offset), ("default_ids", default_ids), ("raw", raw),
                      ("raw_size", raw_size)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} items for {n} records")
    offset = pa.array(source_offset, pa.int64())
    uri = (pa.repeat(pa.scalar(source_uri, pa.large_string()), n) if isinstance(source_uri, str)
           else pa.array(source_uri, pa.large_string()))
    part = (pa.nulls(n, pa.int32()) if source_partition is None else pa.array(source_partition, pa.int32()))
    coords = {"source_type": pa.repeat(pa.scalar(source_type, pa.large_string()), n), "source_uri": uri,
              "source_partition": part, "source_offset": offset}
    codes = decoded.column("error_code")
    n_bad = codes.length() - codes.null_count
    doc_id = decoded.column("doc_id")
    if doc_id.null_count > n_bad:  # some documents carry no id
        fallback = (pa.array(default_ids, pa.large_string()) if default_ids is not None else
                    pc.binary_join_element_wise(pa.scalar(id_prefix, pa.large_string()),
                                                 pc.cast(offset, pa.large_string()), _NO_SEP))
        doc_id = pc.coalesce(doc_id, fallback)
    docs = pa.table({"doc_id": doc_id, "text": decoded.column("text"), **coords,
                     "metadata": decoded.column("metadata")})
    if n_bad == 0:
        return docs, _QUARANTINE_EMPTY
    is_doc = pc.is_null(codes).combine_chunks()
    bad_rows = np.flatnonzero(~np.asarray(is_doc.to_numpy(zero_copy_only=False)))
    raw_bad = pa.array([None if raw[i] is None else raw[i][:raw_limit] for i in bad_rows.tolist()], pa.large_binary())
    quarantine = pa.table({"error_code": codes, "error_detail": decoded.column("error_detail"), **coords,
                           "raw_size": pa.array(raw_size, pa.int64())}).take(bad_rows)
    quarantine = quarantine.add_column(quarantine.schema.get_field_index("raw_size"), "raw", raw_bad)
    return (docs.filter(is_doc) if n_bad < n else docs.slice(0, 0)), quarantine


_NO_SEP = pa.scalar("", pa.large_string())
_QUARANTINE_EMPTY = pa.schema([
    ("error_code", pa.large_string()), ("error_detail", pa.large_string()), ("source_type", pa.large_string()),
    ("source_uri", pa.large_string()), ("source_partition", pa.int32()), ("source_offset", pa.int64()),
    ("raw", pa.large_binary()), ("raw_size", pa.int64()),
]).empty_table()
