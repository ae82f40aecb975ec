"""A corpus of bad input, one file per kind of fault, plus a few good records; shared by the unit tests of
the object reader and the Spark ingest test. `build_corpus(folder)` returns what each file must produce."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

MAX_RECORD_BYTES = 4096


@dataclass(frozen=True)
class Case:
    """File `name` must yield `docs` documents and the quarantine error codes `errors` (in order)."""

    name: str
    data: bytes
    docs: int
    errors: tuple[str, ...]


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def cases() -> list[Case]:
    good = b'{"id": "ok", "text": "fine"}\n'
    gz = gzip.compress(b'{"text": "a"}\n' * 50)
    zs = zstandard.ZstdCompressor().compress(b'{"text": "a"}\n' * 50)
    good_parquet = _parquet(pa.table({"id": [1, 2], "text": ["x", "y"]}))
    return [
        Case("truncated_line.jsonl", good + b'{"id": 1, "text": "x"', 1, ("malformed_json",)),
        Case("trailing_garbage.jsonl", b'{"text": "a"} tail\n', 0, ("malformed_json",)),
        Case("nan.jsonl", b'{"text": "a", "score": NaN}\n', 0, ("malformed_json",)),
        Case("nested.jsonl", b'{"text": "a", "m": ' + b"[" * 1500 + b"]" * 1500 + b"}\n", 0, ("too_deep",)),
        Case("bad_utf8.jsonl", b'{"text": "caf\xe9"}\n' + good, 1, ("invalid_utf8",)),
        Case("surrogate.jsonl", b'{"text": "\\ud800 alone"}\n', 0, ("invalid_unicode",)),
        Case("surrogate_meta.jsonl", b'{"text": "a", "title": "\\udfff"}\n', 0, ("invalid_unicode",)),
        Case("array.jsonl", b"[1, 2]\n", 0, ("not_an_object",)),
        Case("string.jsonl", b'"just text"\n', 0, ("not_an_object",)),
        Case("no_text.jsonl", b'{"id": 1}\n', 0, ("missing_text",)),
        Case("null_text.jsonl", b'{"id": 1, "text": null}\n', 0, ("missing_text",)),
        Case("int_text.jsonl", b'{"text": 5}\n', 0, ("wrong_type_text",)),
        Case("list_text.jsonl", b'{"text": ["a"]}\n', 0, ("wrong_type_text",)),
        Case("float_id.jsonl", b'{"id": 1.5, "text": "a"}\n', 0, ("wrong_type_id",)),
        Case("bool_id.jsonl", b'{"id": true, "text": "a"}\n', 0, ("wrong_type_id",)),
        Case("huge_line.jsonl", b'{"text": "' + b"x" * (3 * MAX_RECORD_BYTES) + b'"}\n' + good, 1, ("too_large",)),
        Case("plain_named_gz.jsonl.gz", good, 0, ("mislabelled_compression",)),
        Case("gzip_named_plain.jsonl", gzip.compress(good), 0, ("mislabelled_compression",)),
        Case("zstd_named_gz.jsonl.gz", zstandard.ZstdCompressor().compress(good), 0, ("mislabelled_compression",)),
        Case("truncated.jsonl.gz", gz[: len(gz) // 2], 0, ("truncated_compression",)),
        Case("truncated.jsonl.zst", zs[: len(zs) - 6], 0, ("truncated_compression",)),
        Case("corrupt.jsonl.gz", gz[:10] + b"\x00garbage" * 20, 0, ("corrupt_compression",)),
        Case("garbage.parquet", b"PAR1 this is not parquet at all", 0, ("unreadable_parquet",)),
        Case("truncated.parquet", good_parquet[: len(good_parquet) - 20], 0, ("unreadable_parquet",)),
        Case("no_text_column.parquet", _parquet(pa.table({"id": [1, 2], "body": ["x", "y"]})), 0,
             ("missing_text", "missing_text")),
        Case("int_text_column.parquet", _parquet(pa.table({"text": [1, 2]})), 0,
             ("wrong_type_text", "wrong_type_text")),
        Case("null_text_row.parquet", _parquet(pa.table({"id": ["p", "q"], "text": ["x", None]})), 1,
             ("missing_text",)),
        Case("mixed_rows.parquet", _parquet(pa.table({
            "id": [1, 2, None, 4], "text": pa.array([b"ok", b"caf\xe9", b"fine", None], pa.binary()),
            "score": [0.5, 1.0, float("nan"), 2.0]})), 1, ("invalid_utf8", "invalid_unicode", "missing_text")),
        Case("bad_utf8.txt", b"caf\xe9 au lait", 0, ("invalid_utf8",)),
        Case("huge.txt", b"y" * (2 * MAX_RECORD_BYTES), 0, ("too_large",)),
        Case("notes.csv", b"a,b\n1,2\n", 0, ("unknown_format",)),
        *more_cases(),
        # good inputs that look odd
        Case("bom_crlf_blank.jsonl", b'\xef\xbb\xbf{"text": "bom"}\r\n\r\n\n{"id": 7, "text": "crlf"}\r\n', 2, ()),
        Case("multi_member.jsonl.gz", gzip.compress(good) + gzip.compress(good), 2, ()),
        Case("good.jsonl.zst", zs, 50, ()),
        Case("good.parquet", good_parquet, 2, ()),
        Case("doc.txt", b"one whole document\nwith two lines", 1, ()),
        Case("empty.jsonl", b"", 0, ()),
    ]


def _nested(depth: int) -> bytes:
    return b'{"text": "a", "m": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}\n"


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(b'{"id": "l%d", "text": "line %d"}\n' % (i, i) for i in range(start, start + n))


def more_cases() -> list[Case]:
    """Faults found by adversarial runs (issue 17) and their neighbours: each beside good records."""
    good = b'{"id": "ok", "text": "fine"}\n'
    gz50, gz_next = gzip.compress(_lines(50)), gzip.compress(_lines(50, 50))
    z = zstandard.ZstdCompressor()
    zs50, zs_next = z.compress(_lines(50)), z.compress(_lines(50, 50))
    bomb = z.compress(_lines(10) + b"\0" * (100 << 20))
    ts = pa.array([0, 300_000_000_000_000_000], pa.timestamp("us"))
    return [
        Case("nested_990.jsonl", good + _nested(990), 1, ("too_deep",)),
        Case("nested_101.jsonl", _nested(101) + good, 1, ("too_deep",)),
        Case("huge_number.jsonl", b'{"text": "a", "n": 1e400}\n' + good, 1, ("malformed_json",)),
        Case("infinity.jsonl", b'{"text": "a", "x": Infinity}\n', 0, ("malformed_json",)),
        Case("comment.jsonl", b'// a comment\n' + good, 1, ("malformed_json",)),
        Case("single_quotes.jsonl", b"{'text': 'a'}\n", 0, ("malformed_json",)),
        Case("trailing_comma.jsonl", b'{"text": "a",}\n', 0, ("malformed_json",)),
        Case("control_char.jsonl", b'{"text": "a\x01b"}\n', 0, ("malformed_json",)),
        Case("nul_bytes.jsonl", b"\0\0\0\n" + good, 1, ("malformed_json",)),
        Case("utf16.jsonl", '{"text": "a"}\n'.encode("utf-16"), 0, ("invalid_utf8", "malformed_json")),
        Case("overlong_utf8.jsonl", b'{"text": "\xc0\xaf"}\n', 0, ("invalid_utf8",)),
        Case("cut_utf8.jsonl", b'{"text": "\xe2\x82"}\n', 0, ("invalid_utf8",)),
        Case("null_line.jsonl", b"null\n" + good, 1, ("not_an_object",)),
        Case("number_line.jsonl", b"42\n", 0, ("not_an_object",)),
        Case("surrogate_id.jsonl", b'{"id": "\\ud800", "text": "a"}\n', 0, ("invalid_unicode",)),
        Case("list_id.jsonl", b'{"id": [1], "text": "a"}\n', 0, ("wrong_type_id",)),
        Case("object_id.jsonl", b'{"id": {"a": 1}, "text": "a"}\n', 0, ("wrong_type_id",)),
        Case("object_text.jsonl", b'{"text": {"a": 1}}\n', 0, ("wrong_type_text",)),
        Case("bool_text.jsonl", b'{"text": false}\n', 0, ("wrong_type_text",)),
        Case("huge_line.jsonl.gz", gzip.compress(good + b'{"text": "' + b"x" * (3 * MAX_RECORD_BYTES) + b'"}\n'),
             1, ("too_large",)),
        Case("gzip_trailing_garbage.jsonl.gz", gz50 + b"trailing garbage", 50, ("trailing_garbage",)),
        Case("zstd_trailing_garbage.jsonl.zst", zs50 + b"junk!", 50, ("trailing_garbage",)),
        Case("gzip_then_truncated.jsonl.gz", gz50 + gz_next[:12], 50, ("truncated_compression",)),
        Case("zstd_then_truncated.jsonl.zst", zs50 + zs_next[: len(zs_next) // 2], 50, ("truncated_compression",)),
        Case("gzip_then_corrupt.jsonl.gz", gz50 + gz_next[:10] + b"\xff" * 64, 50, ("corrupt_compression",)),
        Case("bomb.jsonl.zst", bomb, 10, ("expansion_limit",)),
        Case("corrupt.txt.gz", b"\x1f\x8b\x08\x00" + b"\xff" * 40, 0, ("corrupt_compression",)),
        Case("text_named_zst.txt.zst", b"plain text", 0, ("mislabelled_compression",)),
        Case("timestamp_out_of_range.parquet", _parquet(pa.table({"text": ["a", "b"], "at": ts})), 1,
             ("out_of_range",)),
        Case("date_out_of_range.parquet", _parquet(pa.table({"text": ["a", "b"], "day": pa.array(
            [0, 2**31 - 1], pa.date32())})), 1, ("out_of_range",)),
        Case("float_id_column.parquet", _parquet(pa.table({"id": [1.5, None], "text": ["a", "b"]})), 1,
             ("wrong_type_id",)),
        Case("list_text_column.parquet", _parquet(pa.table({"text": [["a"], ["b"]]})), 0,
             ("wrong_type_text", "wrong_type_text")),
        # good inputs a reader could get wrong
        Case("gzip_zero_padding.jsonl.gz", gz50 + b"\0" * 1024, 50, ()),
        Case("empty_id.jsonl", b'{"id": "", "text": "a"}\n{"id": 0, "text": "b"}\n', 2, ()),
        Case("nested_100.jsonl", _nested(100), 1, ()),
        Case("big_int_id.jsonl", b'{"id": 123456789012345678901234567890, "text": "a"}\n', 1, ()),
        Case("duplicate_keys.jsonl", b'{"text": "a", "text": "b"}\n', 1, ()),
        Case("whitespace_lines.jsonl", b"  \t \n" + good + b"\n \n", 1, ()),
        Case("empty.parquet", _parquet(pa.table({"text": pa.array([], pa.string())})), 0, ()),
        Case("dictionary_text.parquet", _parquet(pa.table({"text": pa.array(["a", "a", "b"]).dictionary_encode()})),
             3, ()),
        Case("doc.txt.gz", gzip.compress(b"compressed text document"), 1, ()),
    ]


def build_corpus(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    out = cases()
    for case in out:
        (folder / case.name).write_bytes(case.data)
    return out


def fault_kinds() -> set[tuple[str, str]]:
    """(file, error code) pairs: distinct kinds of fault in the corpus."""
    return {(c.name, e) for c in cases() for e in c.errors}

