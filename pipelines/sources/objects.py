"""Object sources (local folders and S3 prefixes): listing on the driver, reading inside tasks.

Listing returns `ObjectRef`s (URI, size, ETag); local files use their mtime in nanoseconds as the ETag, so a
rewritten file counts as a new object. Reading streams one object and yields (raw_docs, quarantine) column
batches; a fault inside an object quarantines the rest of it and reading goes on with the next object.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from pipelines.errors import MissingDependencyError
from pipelines.sources.config import LocalSource, S3Source
from pipelines.sources.formats import (
    FormatError,
    check_codec,
    decompress,
    detect_format,
    glob_regex,
    is_data_file,
    iter_line_blocks,
    split_glob,
)
from pipelines.sources.parquet_records import decode_parquet_arrow
from pipelines.sources.records import (
    Decoded,
    decode_json_values,
    decode_text_values,
    split_decoded,
)

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20
READ_AHEAD = 4  # chunks a reading thread may hold ahead of decoding


@dataclass(frozen=True)
class ObjectRef:
    """One listed object: `uri` (file:// or s3://), `size` in bytes, `etag` (S3 ETag or local mtime_ns)."""

    uri: str
    size: int
    etag: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReadOptions:
    """What a task needs to turn an object's bytes into rows (plain values, picklable)."""

    format: str = "auto"
    id_field: str = "id"
    text_field: str = "text"
    max_record_bytes: int = 8 * 1024 * 1024
    raw_limit: int = 4096
    batch_rows: int = 8192
    endpoint: str | None = None
    region: str | None = None
    anonymous: bool = False


def _selected(rel: str, pattern: str | None) -> bool:
    return is_data_file(rel) if pattern is None else bool(glob_regex(pattern).match(rel))


def list_local(src: LocalSource) -> list[ObjectRef]:
    """Files under `src.path` matching its glob (or a single file), sorted by URI."""
    base_s, pattern = split_glob(src.path)
    pattern = pattern or src.glob
    base = Path(base_s).absolute()
    if base.is_file():
        files = [base]
    elif base.is_dir():
        files = sorted(p for p in base.rglob("*") if p.is_file() and _selected(p.relative_to(base).as_posix(), pattern))
    else:
        raise FileNotFoundError(f"local source path does not exist: {base}")
    out = []
    for p in files:
        st = p.stat()
        out.append(ObjectRef(f"file://{p}", st.st_size, str(st.st_mtime_ns)))
    return out


def s3_client(endpoint: str | None, region: str | None, anonymous: bool) -> Any:
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config as BotoConfig
    except ImportError as exc:
        raise MissingDependencyError("S3 sources need boto3 (pip install boto3)") from exc
    config = BotoConfig(signature_version=UNSIGNED) if anonymous else None
    return boto3.client("s3", endpoint_url=endpoint, region_name=region or _env_region(), config=config)


def _env_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def list_s3(src: S3Source) -> list[ObjectRef]:
    """Objects under the source's prefix matching its glob, with size and ETag, sorted by URI."""
    base, pattern = split_glob(src.uri)
    pattern = pattern or src.glob
    scheme, rest = base.split("://", 1)
    bucket, _, prefix = rest.partition("/")
    client = s3_client(src.endpoint, src.region, src.anonymous)
    out = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key == prefix:
                rel = key.rsplit("/", 1)[-1]  # the prefix names one object
            elif prefix and not key.startswith(prefix.rstrip("/") + "/"):
                continue  # "data" must not match "data2/…"
            else:
                rel = key[len(prefix):].lstrip("/")
            if key.endswith("/") or not _selected(rel, pattern):
                continue
            out.append(ObjectRef(f"s3://{bucket}/{key}", int(obj["Size"]), obj["ETag"].strip('"')))
    del scheme
    return sorted(out, key=lambda o: o.uri)


def object_filesystem(uri: str, opts: ReadOptions) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a file:// or s3:// URI (S3: endpoint, region, AWS credential chain)."""
    if uri.startswith(("s3://", "s3a://")):
        kwargs: dict[str, Any] = {}
        if opts.endpoint:
            kwargs["endpoint_override"] = opts.endpoint
            kwargs["scheme"] = "https" if opts.endpoint.startswith("https") else "http"
        region = opts.region or _env_region()
        if region:
            kwargs["region"] = region
        if opts.anonymous:
            kwargs["anonymous"] = True
        return pafs.S3FileSystem(**kwargs), uri.split("://", 1)[1]
    return pafs.LocalFileSystem(), uri.removeprefix("file://")


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


def read_object(obj: ObjectRef, source_type: str, opts: ReadOptions) -> Iterator[Batch]:
    """Stream one object as (raw_docs, quarantine) batches. Object-level faults become one quarantine row at
    the line/row where they happened (offset null when the object could not be opened at all)."""
    fmt = detect_format(obj.uri, opts.format)
    fs, path = object_filesystem(obj.uri, opts)
    try:
        if fmt is None:
            yield _object_error(obj, source_type, opts, "unknown_format", "no reader for this name", _head(fs, path, opts))
        elif fmt.kind == "parquet":
            yield from _read_parquet(fs, path, obj, source_type, opts)
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
                    body = decompress(itertools.chain([head], chunks), fmt.codec)
                    if fmt.kind == "text":
                        yield from _read_text(body, head, obj, source_type, opts)
                    else:
                        yield from _read_jsonl(body, head, obj, source_type, opts)
                finally:
                    chunks.close()  # stops the reading thread before the stream closes
    except FileNotFoundError:
        yield _object_error(obj, source_type, opts, "object_missing", "listed but gone when read", b"")


def _head(fs: pafs.FileSystem, path: str, opts: ReadOptions) -> bytes:
    with fs.open_input_stream(path, compression=None) as f:
        return f.read(opts.raw_limit)


def _object_error(obj: ObjectRef, source_type: str, opts: ReadOptions, code: str, detail: str, raw: bytes,
                  offset: int | None = None) -> Batch:
    dec = Decoded()
    dec.add_error(code, detail)
    return split_decoded(dec.to_arrow(), source_type=source_type, source_uri=obj.uri, source_partition=None,
                         source_offset=[offset], default_ids=[obj.uri], raw=[raw], raw_size=[obj.size],
                         raw_limit=opts.raw_limit)


def _read_jsonl(body: Iterator[bytes], head: bytes, obj: ObjectRef, source_type: str, opts: ReadOptions
                ) -> Iterator[Batch]:
    """Decode batches of `opts.batch_rows` lines (blank lines count, but are not records). A fault in the
    stream quarantines the rest of the object from the first line not yet in a yielded batch."""
    blocks = iter_line_blocks(body, max_line_bytes=opts.max_record_bytes, keep_bytes=opts.raw_limit)
    lines: list[bytes] = []
    sizes: list[int] = []
    next_line = 0  # the first line not in a yielded batch
    try:
        for _, block_lines, block_sizes in blocks:
            lines += block_lines
            sizes += block_sizes
            while len(lines) >= opts.batch_rows:
                yield from _jsonl_batch(next_line, lines[: opts.batch_rows], sizes[: opts.batch_rows], obj,
                                        source_type, opts)
                del lines[: opts.batch_rows], sizes[: opts.batch_rows]
                next_line += opts.batch_rows
        if lines:
            yield from _jsonl_batch(next_line, lines, sizes, obj, source_type, opts)
    except FormatError as exc:
        yield _object_error(obj, source_type, opts, exc.code, f"{exc.detail} (after line {next_line})", head,
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


def _read_parquet(fs: pafs.FileSystem, path: str, obj: ObjectRef, source_type: str, opts: ReadOptions
                  ) -> Iterator[Batch]:
    done = 0
    with fs.open_input_file(path) as f:
        head = f.read(min(opts.raw_limit, obj.size))
        f.seek(0)
        try:
            pfile = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
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
            if isinstance(exc, FileNotFoundError):
                raise
            yield _object_error(obj, source_type, opts, "unreadable_parquet", f"{exc} (after row {done})", head,
                                offset=done)
