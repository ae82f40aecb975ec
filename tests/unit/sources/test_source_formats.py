"""Format detection, globbing, streaming decompression and line splitting."""

from __future__ import annotations

import gzip

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.sources.formats import (
    FormatError,
    ObjectFormat,
    check_codec,
    decompress,
    detect_format,
    glob_regex,
    is_data_file,
    iter_lines,
    split_glob,
)


@pytest.mark.parametrize(("name", "expected"), [
    ("a.jsonl", ObjectFormat("jsonl")), ("a.JSON", ObjectFormat("jsonl")), ("a.ndjson.zst", ObjectFormat("jsonl", "zstd")),
    ("x/a.jsonl.gz", ObjectFormat("jsonl", "gzip")), ("a.parquet", ObjectFormat("parquet")),
    ("a.txt", ObjectFormat("text")), ("a.txt.gz", ObjectFormat("text", "gzip")), ("LICENSE", None), ("a.csv", None),
])
def test_detect_format(name: str, expected: ObjectFormat | None) -> None:
    assert detect_format(name) == expected


def test_configured_format_wins_and_bad_format_raises() -> None:
    assert detect_format("data.bin", "text") == ObjectFormat("text")
    with pytest.raises(ValueError, match="csv"):
        detect_format("a.jsonl", "csv")


def test_data_file_selection() -> None:
    assert is_data_file("a/b.jsonl.gz") and is_data_file("p.parquet")
    assert not is_data_file("README") and not is_data_file("a/.b.jsonl") and not is_data_file("_SUCCESS")
    assert not is_data_file("notes.txt")


def test_glob() -> None:
    rx = glob_regex("**/part-[0-9].jsonl")
    assert rx.match("part-1.jsonl") and rx.match("a/b/part-2.jsonl")
    assert not rx.match("a/part-x.jsonl")
    assert split_glob("/data/*.jsonl") == ("/data", "*.jsonl")
    with pytest.raises(ValueError, match="unclosed"):
        glob_regex("a[b")


def test_check_codec() -> None:
    check_codec(gzip.compress(b"x"), ObjectFormat("jsonl", "gzip"))
    for head, fmt in [(b"{}", ObjectFormat("jsonl", "gzip")), (gzip.compress(b"x"), ObjectFormat("jsonl")),
                      (zstandard.ZstdCompressor().compress(b"x"), ObjectFormat("jsonl", "gzip"))]:
        with pytest.raises(FormatError) as err:
            check_codec(head, fmt)
        assert err.value.code == "mislabelled_compression"


def test_decompress_reads_all_members_and_detects_truncation() -> None:
    data = gzip.compress(b"one\n") + gzip.compress(b"two\n")
    assert b"".join(decompress([data[:7], data[7:]], "gzip")) == b"one\ntwo\n"
    z = zstandard.ZstdCompressor()
    frames = z.compress(b"a" * 100) + z.compress(b"b" * 100)
    assert b"".join(decompress([frames], "zstd")) == b"a" * 100 + b"b" * 100
    for codec, blob in (("gzip", data[:-4]), ("zstd", frames[:-3])):
        with pytest.raises(FormatError) as err:
            b"".join(decompress([blob], codec))
        assert err.value.code == "truncated_compression"


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=20),
       cuts=st.lists(st.integers(min_value=0, max_value=700), max_size=8))
def test_iter_lines_is_independent_of_chunking(lines: list[bytes], cuts: list[int]) -> None:
    data = b"\n".join(lines)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    got = list(iter_lines(chunks, max_line_bytes=16, keep_bytes=4))
    want = list(iter_lines([data], max_line_bytes=16, keep_bytes=4))
    assert got == want
    expected = [ln for ln in lines] if data else []
    if data and not lines[-1]:
        expected = expected[:-1]  # a trailing newline ends the last line, it does not start a new one
    assert [n for n, _, _ in got] == list(range(len(expected)))
    for (_, value, size), line in zip(got, expected, strict=True):
        assert size == len(line.removesuffix(b"\r")) or size == len(line)
        if size > 16:
            assert value == line[:4]
        else:
            assert value == line.removesuffix(b"\r")


def test_iter_lines_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="max_line_bytes=0"):
        list(iter_lines([b"x"], max_line_bytes=0, keep_bytes=1))
