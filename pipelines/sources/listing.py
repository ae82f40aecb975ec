"""Listing object sources on the driver: local folders (symlinks followed, loops cut) and S3 prefixes.

Listing returns `ObjectRef`s (URI, size, ETag) sorted by URI; local files use their mtime in nanoseconds as
the ETag, so a rewritten file counts as a new object. A local file name that is not valid UTF-8 keeps its
bytes visible in the URI (`\\xNN`, as Python's backslashreplace writes them) and its real path in
`ObjectRef.path`, so it is read like any other file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import StageInputError
from pipelines.sources.config import LocalSource, S3Source
from pipelines.sources.formats import glob_regex, is_data_file, split_glob
from pipelines.storage import s3_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectRef:
    """One listed object: `uri` (file:// or s3://), `size` in bytes, `etag` (S3 ETag or local mtime_ns);
    `path` is the local path to open when it differs from the URI's (a file name that is not UTF-8)."""

    uri: str
    size: int
    etag: str
    path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _selected(rel: str, pattern: str | None) -> bool:
    return is_data_file(rel) if pattern is None else bool(glob_regex(pattern).match(rel))


def _walk(base: Path, follow: bool) -> list[Path]:
    """Every file under `base`. With `follow`, symlinked folders are entered once per real folder: a link
    back to a folder already on the way (a loop) or already listed is skipped with a warning."""
    seen: set[tuple[int, int]] = set()
    files: list[Path] = []
    for root, dirs, names in os.walk(base, followlinks=follow):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            log.warning("local source: %s is a folder already listed (a symlink loop or a second link); skipped",
                        root)
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        if not follow:
            for d in dirs:
                if os.path.islink(os.path.join(root, d)):
                    log.warning("local source: symlinked folder %s not followed (follow_symlinks: false)",
                                os.path.join(root, d))
        dirs.sort()
        files += [Path(root) / n for n in names]
    return files


def _uri(p: Path) -> tuple[str, str | None]:
    """(file:// URI, path to open when the name is not UTF-8, else None)."""
    s = str(p)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(s).decode("utf-8", "backslashreplace")
        log.warning("local source: file name is not UTF-8, its bytes are escaped in the URI: %s", shown)
        return f"file://{shown}", s
    return f"file://{s}", None


def list_local(src: LocalSource) -> list[ObjectRef]:
    """Files under `src.path` matching its glob (or a single file), sorted by URI."""
    base_s, pattern = split_glob(src.path)
    pattern = pattern or src.glob
    base = Path(base_s).absolute()
    if base.is_file():
        files = [base]
    elif base.is_dir():
        files = [p for p in _walk(base, src.follow_symlinks)
                 if p.is_file() and _selected(_rel(p, base), pattern)]
    else:
        raise StageInputError(f"local source path does not exist: {base}")
    out = []
    for p in files:
        try:
            st = p.stat()
        except OSError as exc:  # a dangling link or a file gone since listing: nothing to read now
            log.warning("local source: %s cannot be listed (%s); left for a later run", p, exc)
            continue
        uri, path = _uri(p)
        out.append(ObjectRef(uri, st.st_size, str(st.st_mtime_ns), path))
    return sorted(out, key=lambda o: o.uri)


def _rel(p: Path, base: Path) -> str:
    return os.fsencode(p.relative_to(base).as_posix()).decode("utf-8", "backslashreplace")


def list_s3(src: S3Source) -> list[ObjectRef]:
    """Objects under the source's prefix matching its glob, with size and ETag, sorted by URI."""
    base, pattern = split_glob(src.uri)
    pattern = pattern or src.glob
    _, rest = base.split("://", 1)
    bucket, _, prefix = rest.partition("/")
    client = s3_client(src.s3_options())
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
    return sorted(out, key=lambda o: o.uri)
