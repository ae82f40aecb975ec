"""Object sources (local folders and S3 prefixes): reading inside tasks (listing is in `listing`).

Reading streams one object and yields (raw_docs, quarantine) column batches; a fault inside an object keeps
what decoded before it, quarantines the rest of it as one row, and reading goes on with the next object.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ObjectProgress", "ObjectRef", "ReadOptions", "TransientReadError", "list_local", "list_s3",
           "read_object"]

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.sources.formats import (
    FormatError,
    ObjectFormat,
    StreamPosition,
    check_codec,
    decompress,
    detect_format,
    iter_line_blocks,
)
from pipelines.sources.listing import ObjectRef, list_local, list_s3
from pipelines.sources.parquet_records import decode_parquet_arrow
from pipelines.sources.records import (
    Decoded,
    decode_json_values,
    decode_text_values,
    split_decoded,
)
from pipelines.sources.resume import ReadTracker, ResumePoint, resumable
from pipelines.storage import S3Options, filesystem

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20
READ_AHEAD = 4  # chunks a reading thread may hold ahead of decoding


@dataclass(frozen=True)
class ReadOptions:
    """What a task needs to turn an object's bytes into rows (plain values, picklable)."""

    format: str = "auto"
    id_field: str = "id"
    text_field: str = "text"
    max_record_bytes: int = 8 * 1024 * 1024
    raw_limit: int = 4096
    batch_rows: int = 8192
    s3: S3Options = field(default_factory=S3Options)
    max_expansion: int = 1000


@dataclass
class ObjectProgress:
    """A resumable read's start and end: `resume_from` (given) is where the last run stopped reading the
    object; `resumed` says whether this read went on from there (else the object was read whole), and
    `point` is where this read stopped (None for an object that cannot be resumed or whose read failed)."""

    resume_from: ResumePoint | None = None
    resumed: bool = False
    point: ResumePoint | None = None


class _PythonFiles:
    """The two opening calls of a pyarrow filesystem, through Python's open(), for a local path pyarrow
    cannot name (a file name that is not UTF-8)."""

    def open_input_stream(self, path: str, compression: str | None = None) -> pa.PythonFile:
        return pa.PythonFile(open(path, "rb"), mode="r")  # noqa: SIM115 (closed by the caller's `with`)

    def open_input_file(self, path: str) -> pa.PythonFile:
        return pa.PythonFile(open(path, "rb"), mode="r")  # noqa: SIM115


Batch = tuple[pa.Table, pa.Table]


def read_ahead(read: Callable[[int], bytes], chunk_bytes: int, depth: int) -> Generator[bytes, None, None]:
    """The chunks `read(chunk_bytes)` returns until it returns b"", read by a helper thread at most `depth`
    chunks ahead of the consumer, so waiting for the store overlaps decoding (pyarrow reads release the GIL).

    An exception of `read` is raised to the consumer where its chunk would have been. Closing the generator
    stops the thread (at most one `read` call later) before it returns. Raises ValueError for a
    non-positive `chunk_bytes` or `depth`.
    """
    if chunk_bytes <= 0 or depth <= 0:
        raise ValueError(f"chunk_bytes={chunk_bytes} depth={depth}")
    chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: bytes | BaseException) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            while offer(chunk := read(chunk_bytes)) and chunk:
                pass
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)

    thread = threading.Thread(target=pump, name="tokenmill-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = chunks.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        thread.join()


class TransientReadError(Exception):
    """Reading an object failed in a way that may pass (gone, no permission, I/O or network error); the task
    retries the object, then leaves it for the next run instead of recording it as ingested."""

    def __init__(self, uri: str, exc: BaseException) -> None:
        super().__init__(f"{uri}: {type(exc).__name__}: {exc}")
        self.uri = uri


def is_transient(exc: BaseException) -> bool:
    """True for an error of the store rather than of the bytes: a missing or forbidden object, a system
    call error (errno set), a network error or an S3 error reported by pyarrow."""
    if isinstance(exc, FileNotFoundError | PermissionError | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and (exc.errno is not None or "AWS Error" in str(exc) or "[Errno" in str(exc))


def read_object(obj: ObjectRef, source_type: str, opts: ReadOptions, progress: ObjectProgress | None = None
                ) -> Iterator[Batch]:
    """Stream one object as (raw_docs, quarantine) batches.

    Faults of the bytes become one quarantine row at the line/row where they happened (offset null when the
    object could not be opened at all); records decoded before a fault are kept. Any other exception while
    decoding becomes a `read_error` row naming its class and message, after the rows already yielded.
    Raises TransientReadError for an error of the store (`is_transient`): the caller retries or defers.
    """
    done = 0  # records (lines/rows) of the object in yielded batches
    try:
        for docs, bad in _read_object(obj, source_type, opts, progress):
            for table in (docs, bad):
                if table.num_rows:
                    last = pc.max(table.column("source_offset")).as_py()
                    done = max(done, (last + 1) if last is not None else done)
            yield docs, bad
    except TransientReadError:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise TransientReadError(obj.uri, exc) from exc
        log.warning("object %s: %s after record %d: %s", obj.uri, type(exc).__name__, done, exc)
        yield _object_error(obj, source_type, opts, "read_error", f"{type(exc).__name__}: {exc}", b"", offset=done)


def _read_object(obj: ObjectRef, source_type: str, opts: ReadOptions, progress: ObjectProgress | None
                 ) -> Iterator[Batch]:
    fmt = detect_format(obj.uri, opts.format)
    fs: Any
    fs, path = (_PythonFiles(), obj.path) if obj.path else filesystem(obj.uri, opts.s3)
    if fmt is None:
        yield _object_error(obj, source_type, opts, "unknown_format", "no reader for this name", _head(fs, path, opts))
    elif fmt.kind == "parquet":
        yield from _read_parquet(fs, path, obj, source_type, opts)
    elif resumable(fmt.kind, fmt.codec):
        yield from _read_plain_jsonl(fs, path, obj, source_type, opts, progress)
    else:
        stream = fs.open_input_stream(path, compression=None)
        with stream:
            chunks = read_ahead(stream.read, READ_CHUNK, READ_AHEAD)
            try:
                head = next(chunks, b"")
                try:
                    check_codec(head, fmt)
                except FormatError as exc:
                    yield _object_error(obj, source_type, opts, exc.code, exc.detail, head)
                    return
                pos = StreamPosition()
                limit = max(opts.max_expansion * obj.size, MIN_EXPANSION_BYTES) if fmt.codec else None
                body = decompress(itertools.chain([head], chunks), fmt.codec, max_output=limit, pos=pos)
                if fmt.kind == "text":
                    yield from _read_text(body, head, obj, source_type, opts)
                else:
                    yield from _read_jsonl(body, head, obj, source_type, opts)
                if pos.trailing_at is not None:
                    yield from _trailing(pos, obj, source_type, opts)
            finally:
                chunks.close()  # stops the reading thread before the stream closes


def _read_plain_jsonl(fs: Any, path: str, obj: ObjectRef, source_type: str, opts: ReadOptions,
                      progress: ObjectProgress | None) -> Iterator[Batch]:
    """An uncompressed JSON-lines object, read up to its listed size (what a writer appends meanwhile is
    left for the next run), from `progress.resume_from` when the object only grew since; the point where
    this read stopped is left in `progress.point` (see `pipelines.sources.resume`)."""
    progress = progress if progress is not None else ObjectProgress()
    with fs.open_input_file(path) as f:
        tracker = _resume_tracker(f, obj, progress)
        chunks = read_ahead(_bounded(f.read, obj.size - tracker.pos), READ_CHUNK, READ_AHEAD)
        try:
            head = next(chunks, b"")
            if not progress.resumed:
                try:
                    check_codec(head, ObjectFormat("jsonl"))
                except FormatError as exc:
                    yield _object_error(obj, source_type, opts, exc.code, exc.detail, head)
                    return
            body = map(tracker.feed, itertools.chain([head], chunks))
            yield from _read_jsonl(body, head, obj, source_type, opts, first_line=tracker.lines)
            progress.point = tracker.point()
        finally:
            chunks.close()


def _resume_tracker(f: Any, obj: ObjectRef, progress: ObjectProgress) -> ReadTracker:
    """A tracker positioned where reading starts: at `progress.resume_from` when the object's head and tail
    blocks there still hash as recorded (`progress.resumed` set), else at byte 0 (a rewritten object)."""
    point = progress.resume_from
    if point is None:
        return ReadTracker()
    (h_at, h_len), (t_at, t_len) = point.blocks()
    f.seek(h_at)
    head = f.read(h_len)
    f.seek(t_at)
    tail = f.read(t_len)
    if len(head) == h_len and len(tail) == t_len and point.matches(head, tail):
        progress.resumed = True
        log.info("object %s grew: reading on from byte %d (line %d)", obj.uri, point.read_bytes, point.read_lines)
        return ReadTracker(point.read_bytes, point.read_lines, head, tail)
    log.warning("object %s was rewritten (the bytes read before changed): reading it whole as a new version",
                obj.uri)
    f.seek(0)
    return ReadTracker()


def _bounded(read: Callable[[int], bytes], limit: int) -> Callable[[int], bytes]:
    """`read` that returns b"" once `limit` bytes came back."""
    left = max(0, limit)

    def bounded(n: int) -> bytes:
        nonlocal left
        if left <= 0:
            return b""
        data = read(min(n, left))
        left -= len(data)
        return data

    return bounded


# Any object may decompress to this much, whatever its stored size (ingest.max_expansion bounds the rest).
MIN_EXPANSION_BYTES = 64 << 20


def _trailing(pos: StreamPosition, obj: ObjectRef, source_type: str, opts: ReadOptions) -> Iterator[Batch]:
    """Bytes after the last compressed member: zero padding is only logged; anything else is one
    `trailing_garbage` row (everything before it was read)."""
    where = f"{pos.trailing_bytes} bytes after the last complete member, at compressed byte {pos.trailing_at}"
    if pos.trailing_zero:
        log.warning("object %s: ignored zero padding: %s", obj.uri, where)
        return
    log.warning("object %s: ignored trailing garbage: %s", obj.uri, where)
    yield _object_error(obj, source_type, opts, "trailing_garbage", where, pos.trailing_head,
                        offset=None, raw_size=pos.trailing_bytes)


def _head(fs: Any, path: str, opts: ReadOptions) -> bytes:
    with fs.open_input_stream(path, compression=None) as f:
        return f.read(opts.raw_limit)


def _object_error(obj: ObjectRef, source_type: str, opts: ReadOptions, code: str, detail: str, raw: bytes,
                  offset: int | None = None, raw_size: int | None = None) -> Batch:
    dec = Decoded()
    dec.add_error(code, detail)
    return split_decoded(dec.to_arrow(), source_type=source_type, source_uri=obj.uri, source_partition=None,
                         source_offset=[offset], default_ids=[obj.uri], raw=[raw],
                         raw_size=[obj.size if raw_size is None else raw_size], raw_limit=opts.raw_limit)


def _read_jsonl(body: Iterator[bytes], head: bytes, obj: ObjectRef, source_type: str, opts: ReadOptions,
                first_line: int = 0) -> Iterator[Batch]:
    """Decode batches of `opts.batch_rows` lines (blank lines count, but are not records). A fault in the
    stream keeps every complete line before it and becomes one row at the first line it cut (the
    unterminated line it cut is part of the fault)."""
    blocks = iter_line_blocks(body, max_line_bytes=opts.max_record_bytes, keep_bytes=opts.raw_limit)
    lines: list[bytes] = []
    sizes: list[int] = []
    next_line = first_line  # the first line not in a yielded batch
    fault: FormatError | None = None
    try:
        for _, block_lines, block_sizes in blocks:
            lines += block_lines
            sizes += block_sizes
            while len(lines) >= opts.batch_rows:
                yield from _jsonl_batch(next_line, lines[: opts.batch_rows], sizes[: opts.batch_rows], obj,
                                        source_type, opts)
                del lines[: opts.batch_rows], sizes[: opts.batch_rows]
                next_line += opts.batch_rows
    except FormatError as exc:
        fault = exc
    if lines:
        yield from _jsonl_batch(next_line, lines, sizes, obj, source_type, opts)
        next_line += len(lines)
    if fault is not None:
        yield _object_error(obj, source_type, opts, fault.code, f"{fault.detail} (after line {next_line})", head,
                            offset=next_line)


def _jsonl_batch(first: int, values: list[bytes], sizes: list[int], obj: ObjectRef, source_type: str,
                 opts: ReadOptions) -> Iterator[Batch]:
    """Lines `first`, `first + 1`, ... as one batch; blank lines are not records (nothing for a blank batch)."""
    numbers: Sequence[int] = range(first, first + len(values))
    blank = [i for i, v in enumerate(values) if not v.strip()]
    if blank:
        keep = sorted(set(range(len(values))) - set(blank))
        if not keep:
            return
        numbers = [numbers[i] for i in keep]
        values, sizes = [values[i] for i in keep], [sizes[i] for i in keep]
    dec = decode_json_values(values, sizes, id_field=opts.id_field, text_field=opts.text_field,
                             max_record_bytes=opts.max_record_bytes)
    yield split_decoded(dec.to_arrow(), source_type=source_type, source_uri=obj.uri, source_partition=None,
                        source_offset=numbers, id_prefix=f"{obj.uri}:", raw=values, raw_size=sizes,
                        raw_limit=opts.raw_limit)


def _read_text(body: Iterator[bytes], head: bytes, obj: ObjectRef, source_type: str, opts: ReadOptions
               ) -> Iterator[Batch]:
    parts, size = [], 0
    try:
        for chunk in body:
            if size <= opts.max_record_bytes:
                parts.append(chunk)
            size += len(chunk)
    except FormatError as exc:
        yield _object_error(obj, source_type, opts, exc.code, exc.detail, head, offset=0)
        return
    data = b"".join(parts)
    dec = decode_text_values([data], [size], max_record_bytes=opts.max_record_bytes)
    yield split_decoded(dec.to_arrow(), source_type=source_type, source_uri=obj.uri, source_partition=None,
                        source_offset=[0], default_ids=[obj.uri], raw=[data], raw_size=[size], raw_limit=opts.raw_limit)


def _read_parquet(fs: Any, path: str, obj: ObjectRef, source_type: str, opts: ReadOptions
                  ) -> Iterator[Batch]:
    done = 0
    with fs.open_input_file(path) as f:
        head = f.read(min(opts.raw_limit, obj.size))
        f.seek(0)
        try:
            pfile = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as exc:
            if is_transient(exc):
                raise
            yield _object_error(obj, source_type, opts, "unreadable_parquet", str(exc), head)
            return
        try:
            for batch in pfile.iter_batches(batch_size=opts.batch_rows):
                decoded, raws = decode_parquet_arrow(batch, id_field=opts.id_field, text_field=opts.text_field,
                                                     max_record_bytes=opts.max_record_bytes)
                yield split_decoded(decoded, source_type=source_type, source_uri=obj.uri,
                                    source_partition=None, source_offset=range(done, done + batch.num_rows),
                                    id_prefix=f"{obj.uri}:", raw=raws,
                                    raw_size=[len(r) if r is not None else 0 for r in raws],
                                    raw_limit=opts.raw_limit)
                done += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            if is_transient(exc):
                raise
            yield _object_error(obj, source_type, opts, "unreadable_parquet", f"{exc} (after row {done})", head,
                                offset=done)
