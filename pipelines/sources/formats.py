"""Object formats: choosing a reader by name and magic bytes, streaming decompression and line splitting.

All functions here are pure (bytes in, bytes out) and raise `FormatError` with a stable quarantine error code
when the bytes cannot be what the object claims to be.
"""

from __future__ import annotations

import fnmatch
import re
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import zstandard

Kind = Literal["jsonl", "parquet", "text"]
Codec = Literal["gzip", "zstd"] | None

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC = b"PAR1"

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
CODEC_SUFFIXES: dict[str, Codec] = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
# What a source takes when it has no glob: JSON lines (plain or compressed) and Parquet, nothing else.
DATA_SUFFIXES = tuple(s + c for s in JSONL_SUFFIXES for c in ("", *CODEC_SUFFIXES)) + (".parquet", ".pq")


class FormatError(Exception):
    """The object's bytes do not match its format; `code` is the quarantine error code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ObjectFormat:
    """How to read one object: `kind` of records inside, `codec` of the compression around them."""

    kind: Kind
    codec: Codec = None


def detect_format(name: str, configured: str = "auto") -> ObjectFormat | None:
    """The format of object `name` from its suffix (or `configured` when not "auto"); None when unknown.

    >>> detect_format("a/b.jsonl.gz")
    ObjectFormat(kind='jsonl', codec='gzip')
    >>> detect_format("x.txt"), detect_format("README")
    (ObjectFormat(kind='text', codec=None), None)
    >>> detect_format("x.dat", "jsonl")
    ObjectFormat(kind='jsonl', codec=None)
    """
    lower = name.lower().rsplit("/", 1)[-1]
    codec: Codec = None
    for suffix, c in CODEC_SUFFIXES.items():
        if lower.endswith(suffix):
            codec, lower = c, lower[: -len(suffix)]
            break
    if configured != "auto":
        if configured not in ("jsonl", "parquet", "text"):
            raise ValueError(f"unknown object format {configured!r}")
        return ObjectFormat(configured, None if configured == "parquet" else codec)  # type: ignore[arg-type]
    if lower.endswith(JSONL_SUFFIXES):
        return ObjectFormat("jsonl", codec)
    if lower.endswith((".parquet", ".pq")) and codec is None:
        return ObjectFormat("parquet")
    if lower.endswith(".txt"):
        return ObjectFormat("text", codec)
    return None


def is_data_file(name: str) -> bool:
    """True for a non-hidden object whose suffix is one of DATA_SUFFIXES (the default selection)."""
    base = name.rsplit("/", 1)[-1]
    return not base.startswith((".", "_")) and base.lower().endswith(DATA_SUFFIXES)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a relative glob: `**/` spans zero or more folders, `*` and `?` stay inside one folder.

    >>> bool(glob_regex("**/*.jsonl").match("a/b/c.jsonl")), bool(glob_regex("*.jsonl").match("a/c.jsonl"))
    (True, False)
    >>> bool(glob_regex("**/*.jsonl").match("c.jsonl"))
    True
    """
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"unclosed '[' in glob {pattern!r}")
            out.append(fnmatch.translate(pattern[i : end + 1])[4:-3])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def split_glob(uri: str) -> tuple[str, str | None]:
    """Split a URI/path at its first glob character: (base folder, relative glob or None).

    >>> split_glob("s3://b/crawl/*/part-*.jsonl")
    ('s3://b/crawl', '*/part-*.jsonl')
    >>> split_glob("s3://b/crawl/")
    ('s3://b/crawl', None)
    """
    first = min((i for i, ch in enumerate(uri) if ch in "*?["), default=-1)
    if first < 0:
        return uri.rstrip("/"), None
    base, _, _ = uri[:first].rpartition("/")
    return base, uri[len(base) + 1 :]


def check_codec(head: bytes, fmt: ObjectFormat) -> None:
    """Raise FormatError("mislabelled_compression") when the first bytes contradict the object's name."""
    gz, zs = head.startswith(GZIP_MAGIC), head.startswith(ZSTD_MAGIC)
    if fmt.codec == "gzip" and not gz or fmt.codec == "zstd" and not zs:
        raise FormatError("mislabelled_compression", f"named {fmt.codec} but the bytes are not")
    if fmt.codec is None and (gz or zs):
        raise FormatError("mislabelled_compression", f"named uncompressed but the bytes are {'gzip' if gz else 'zstd'}")
    if fmt.kind == "parquet" and head and not head.startswith(PARQUET_MAGIC):
        raise FormatError("unreadable_parquet", "no PAR1 magic")


@dataclass
class StreamPosition:
    """Where a decompressing read stands: `compressed` input bytes consumed, `produced` output bytes, and
    trailing bytes found after the last complete member/frame (`trailing_at` offset, `trailing_zero` when
    they are all zero bytes: tape or block padding)."""

    compressed: int = 0
    produced: int = 0
    trailing_at: int | None = None
    trailing_bytes: int = 0
    trailing_zero: bool = True
    trailing_head: bytes = b""


# Input handed to the decompressor per call. zstd has no output bound per call, and a 4-byte RLE block
# expands to 128 KiB, so a 1 KiB slice caps one call's output at 32 MiB whatever the input is.
ZSTD_SLICE = 1024
OUT_CHUNK = 1 << 20  # output pieces are coalesced up to about this size


def decompress(chunks: Iterable[bytes], codec: Codec, *, max_output: int | None = None,
               pos: StreamPosition | None = None) -> Iterator[bytes]:
    """Stream-decompress `chunks` in pieces of at most about OUT_CHUNK bytes, so memory stays flat whatever
    the expansion; multi-member gzip and multi-frame zstd are read through.

    Bytes after the last complete member/frame that do not start another one are not an error: they are
    recorded in `pos` (`trailing_at`, `trailing_zero`) for the caller to report, as `gzip -d` warns of them.
    Raises FormatError with the compressed byte offset in its detail: "corrupt_compression" on bad data,
    "truncated_compression" when the input ends inside a member/frame, "expansion_limit" once more than
    `max_output` bytes came out. Data before the fault has been yielded already.
    """
    pos = pos if pos is not None else StreamPosition()
    if codec is None:
        for chunk in chunks:
            pos.compressed += len(chunk)
            pos.produced += len(chunk)
            yield chunk
        return
    if codec not in ("gzip", "zstd"):
        raise ValueError(f"unknown codec {codec!r}")
    out: list[bytes] = []
    size = 0
    try:
        for whole in _members(chunks, codec, pos):
            for start in range(0, len(whole), OUT_CHUNK):  # one zstd call may give up to 32 MiB
                piece = whole[start : start + OUT_CHUNK]
                pos.produced += len(piece)
                if max_output is not None and pos.produced > max_output:
                    raise FormatError("expansion_limit", f"{codec}: over {max_output} bytes decompressed "
                                                         f"(at compressed byte {pos.compressed})")
                out.append(piece)
                size += len(piece)
                if size >= OUT_CHUNK:
                    yield b"".join(out)
                    out, size = [], 0
    except FormatError:  # what decoded before the fault is handed on first
        if out:
            yield b"".join(out)
        raise
    if out:
        yield b"".join(out)


_MAGIC = {"gzip": GZIP_MAGIC, "zstd": ZSTD_MAGIC}


def _members(chunks: Iterable[bytes], codec: str, pos: StreamPosition) -> Iterator[bytes]:
    """Raw output pieces of every member/frame; trailing non-member bytes recorded in `pos`."""
    magic = _MAGIC[codec]
    dec = _decompressor(codec)
    started = False  # inside a member/frame
    members = 0
    pending = b""
    for chunk in chunks:
        data = pending + chunk if pending else chunk
        pending = b""
        while data:
            if pos.trailing_at is not None:
                _note_trailing(pos, data)
                break
            if not started and members and not data.startswith(magic):
                if len(data) < len(magic) and magic.startswith(data):
                    pending = data  # too short to tell yet
                    break
                pos.trailing_at = pos.compressed
                _note_trailing(pos, data)
                break
            data = yield from _feed(dec, data, codec, pos)
            started = True
            if dec.eof:
                members += 1
                data = dec.unused_data + data
                dec = _decompressor(codec)
                started = False
    if pending:
        pos.trailing_at = pos.compressed
        _note_trailing(pos, pending)
    if started:
        what = "member" if codec == "gzip" else "frame"
        raise FormatError("truncated_compression",
                          f"{codec} stream ends inside a {what} (at compressed byte {pos.compressed})")


def _feed(dec, data: bytes, codec: str, pos: StreamPosition  # type: ignore[no-untyped-def]
          ) -> Generator[bytes, None, bytes]:
    """Give `data` to `dec` with bounded output per call; returns the input it did not take (after its
    member/frame ended, in `dec.unused_data` for gzip, or not yet handed over for zstd)."""
    try:
        if codec == "gzip":
            while True:
                piece = dec.decompress(data, OUT_CHUNK)
                rest = dec.unused_data if dec.eof else dec.unconsumed_tail
                pos.compressed += len(data) - len(rest)
                if piece:
                    yield piece
                if dec.eof:
                    return b""  # unused_data is picked up by the caller
                data = rest
                if not data and len(piece) < OUT_CHUNK:
                    return b""
        while data:
            head, data = data[:ZSTD_SLICE], data[ZSTD_SLICE:]
            piece = dec.decompress(head)
            pos.compressed += len(head) - (len(dec.unused_data) if dec.eof else 0)
            if piece:
                yield piece
            if dec.eof:
                return data
        return b""
    except (zlib.error, zstandard.ZstdError) as exc:
        raise FormatError("corrupt_compression", f"{codec}: {exc} (at compressed byte {pos.compressed})") from None


def _note_trailing(pos: StreamPosition, data: bytes) -> None:
    if not pos.trailing_head:
        pos.trailing_head = data[:64]
    pos.trailing_bytes += len(data)
    pos.trailing_zero = pos.trailing_zero and not data.strip(b"\0")
    pos.compressed += len(data)


def _decompressor(codec: str):  # type: ignore[no-untyped-def]
    if codec == "gzip":
        return zlib.decompressobj(wbits=31)
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    raise ValueError(f"unknown codec {codec!r}")


def iter_line_blocks(chunks: Iterable[bytes], *, max_line_bytes: int, keep_bytes: int
                     ) -> Iterator[tuple[int, list[bytes], list[int]]]:
    """Split a byte stream into lines, one block per input chunk that ends at least one line.

    Yields (0-based number of the block's first line, lines, sizes in bytes). Line ends (`\\n`, `\\r\\n`) are
    dropped. A line longer than `max_line_bytes` is not kept whole across chunks: its first `keep_bytes` bytes
    are yielded with its full size (a `\\r` before its `\\n` counted), so callers see `size > max_line_bytes`.
    A final line without a newline is yielded too. The lines do not depend on how the stream is chunked.
    Raises ValueError for non-positive `max_line_bytes` or negative `keep_bytes`.
    """
    if max_line_bytes <= 0 or keep_bytes < 0:
        raise ValueError(f"max_line_bytes={max_line_bytes} keep_bytes={keep_bytes}")
    line_no = 0
    carry: list[bytes] = []
    carry_size = 0
    for chunk in chunks:
        parts = chunk.split(b"\n")
        # the first part ends the line carried over from earlier chunks
        if carry_size + len(parts[0]) <= max_line_bytes:
            carry.append(parts[0])
        elif carry_size <= max_line_bytes:
            carry = [b"".join(carry)[:keep_bytes], parts[0][: max(0, keep_bytes - carry_size)]]
        carry_size += len(parts[0])
        if len(parts) == 1:
            continue
        last = parts.pop()
        parts[0] = b"".join(carry)
        sizes = list(map(len, parts))
        sizes[0] = carry_size
        if max(sizes) > max_line_bytes or b"\r" in chunk or parts[0].endswith(b"\r"):
            _trim(parts, sizes, max_line_bytes, keep_bytes)
        yield line_no, parts, sizes
        line_no += len(parts)
        carry, carry_size = [last if len(last) <= max_line_bytes else last[:keep_bytes]], len(last)
    if carry_size:
        lines, sizes = [b"".join(carry)], [carry_size]
        _trim(lines, sizes, max_line_bytes, keep_bytes)
        yield line_no, lines, sizes


def _trim(lines: list[bytes], sizes: list[int], max_line_bytes: int, keep_bytes: int) -> None:
    """In place: heads of over-long lines, `\\r` line ends dropped (from lines within the limit only)."""
    for i, (data, size) in enumerate(zip(lines, sizes, strict=True)):
        if size > max_line_bytes:
            lines[i] = data[:keep_bytes]
        elif data.endswith(b"\r"):
            lines[i], sizes[i] = data[:-1], size - 1


def iter_lines(chunks: Iterable[bytes], *, max_line_bytes: int, keep_bytes: int) -> Iterator[tuple[int, bytes, int]]:
    """The lines of `iter_line_blocks` one at a time: yields (0-based line number, bytes, size in bytes)."""
    for first, lines, sizes in iter_line_blocks(chunks, max_line_bytes=max_line_bytes, keep_bytes=keep_bytes):
        yield from zip(range(first, first + len(lines)), lines, sizes, strict=True)
