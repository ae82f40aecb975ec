"""The on-disk shard format: reproducible ustar members, sample sizes counting headers and padding, the
per-shard index (written and parsed here only) and the sample JSON, and `iter_members`, the one way a tar is
read member by member. Pure functions; the shard writer, the loader and lineage all build on them.

A sample is two members, in order: `<key>.tokens` (little-endian token ids) and `<key>.json` (UTF-8 JSON
{"doc_id","n_tokens","source"}, sorted keys, no spaces). `key` is the 12-digit zero-padded global sample
index. Headers carry mode 0o644, uid/gid 0, empty uname/gname and mtime 0, byte for byte what Python's
`tarfile` writes in USTAR format for the same members. A shard ends with two 512-byte zero blocks.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)
END_NBYTES = len(END_OF_ARCHIVE)
KEY_DIGITS = 12
MAX_MEMBER_SIZE = 8**11 - 1  # largest size an 11-digit octal ustar field holds
TOKENS_EXT = "tokens"
JSON_EXT = "json"

INDEX_FIELDS = ("tokens_offset", "n_tokens", "json_offset", "json_nbytes")
INDEX_DTYPE = np.dtype([(f, "<i8") for f in INDEX_FIELDS])
# np.load parses the .npy header with ast.literal_eval, which CPython 3.11 cannot run in two threads at
# once ("AST constructor recursion depth mismatch"); the loader's producer and checking threads load indexes
_NPY_HEADER_LOCK = threading.Lock()


def sample_key(index: int) -> str:
    """The member key of the sample at global `index`: 12 digits, zero-padded.

    >>> sample_key(42)
    '000000000042'
    """
    if not 0 <= index < 10**KEY_DIGITS:
        raise ValueError(f"sample index {index} does not fit {KEY_DIGITS} digits")
    return f"{index:0{KEY_DIGITS}d}"


def padded(nbytes: int) -> int:
    """`nbytes` rounded up to whole 512-byte blocks.

    >>> padded(0), padded(1), padded(512), padded(513)
    (0, 512, 512, 1024)
    """
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    return -(-nbytes // BLOCK) * BLOCK


def member_nbytes(size: int) -> int:
    """Bytes one member of `size` data bytes takes in the archive: header plus padded data."""
    return BLOCK + padded(size)


def sample_nbytes(tokens_nbytes: np.ndarray, json_nbytes: np.ndarray) -> np.ndarray:
    """Archive bytes of each sample (both members, headers and padding), int64, elementwise.

    >>> sample_nbytes(np.array([8, 1024]), np.array([40, 40])).tolist()
    [2048, 2560]
    """
    t = np.asarray(tokens_nbytes, dtype=np.int64)
    j = np.asarray(json_nbytes, dtype=np.int64)
    if (t < 0).any() or (j < 0).any():
        raise ValueError("member sizes must be >= 0")
    return 2 * BLOCK + (t + BLOCK - 1) // BLOCK * BLOCK + (j + BLOCK - 1) // BLOCK * BLOCK


def shard_nbytes(sample_bytes: np.ndarray) -> int:
    """Size of a shard holding samples of these archive sizes: their sum plus the end-of-archive blocks."""
    return int(np.asarray(sample_bytes, dtype=np.int64).sum()) + END_NBYTES


def sample_json(doc_id: str, n_tokens: int, source: str | None) -> bytes:
    """The `.json` member of a sample: UTF-8, sorted keys, no spaces, non-ASCII kept as is.

    >>> sample_json("d1", 3, "local:/x.jsonl")
    b'{"doc_id":"d1","n_tokens":3,"source":"local:/x.jsonl"}'
    """
    payload = {"doc_id": doc_id, "n_tokens": int(n_tokens), "source": source}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def ustar_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file `name` of `size` bytes with the fixed, reproducible
    attributes (mode 0o644, uid/gid 0, empty owner names, mtime 0). ValueError for a name over 100 bytes,
    a non-ASCII name or a size an 11-digit octal field cannot hold."""
    raw = name.encode("ascii", errors="strict") if name.isascii() else None
    if raw is None or not raw or len(raw) > 100:
        raise ValueError(f"member name {name!r} must be 1-100 ASCII bytes")
    if not 0 <= size <= MAX_MEMBER_SIZE:
        raise ValueError(f"member size {size} is outside 0..{MAX_MEMBER_SIZE}")
    parts = [
        raw.ljust(100, b"\x00"),
        _octal(0o644, 8),
        _octal(0, 8),  # uid
        _octal(0, 8),  # gid
        _octal(size, 12),
        _octal(0, 12),  # mtime
        b" " * 8,  # checksum placeholder, counted as spaces
        b"0",  # regular file
        bytes(100),  # linkname
        b"ustar\x0000",
        bytes(32),  # uname
        bytes(32),  # gname
        bytes(16),  # devmajor, devminor: empty for regular files, as tarfile writes them
        bytes(155),  # prefix
    ]
    header = b"".join(parts).ljust(BLOCK, b"\x00")
    checksum = sum(header)
    return header[:148] + b"%06o\x00" % checksum + header[155:]


def member_bytes(name: str, data: bytes) -> bytes:
    """A whole member: header, data and zero padding to the next block."""
    return ustar_header(name, len(data)) + data + bytes(padded(len(data)) - len(data))


def encode_sample(index: int, tokens: bytes, meta_json: bytes) -> bytes:
    """Both members of the sample at global `index`, as they appear in a shard."""
    key = sample_key(index)
    return member_bytes(f"{key}.{TOKENS_EXT}", tokens) + member_bytes(f"{key}.{JSON_EXT}", meta_json)


def index_bytes(index: np.ndarray) -> bytes:
    """A shard index as `.npy` bytes (no pickle); the header is deterministic for a given length."""
    if index.dtype != INDEX_DTYPE:
        raise ValueError(f"index dtype must be {INDEX_DTYPE}, got {index.dtype}")
    buf = io.BytesIO()
    np.save(buf, index, allow_pickle=False)
    return buf.getvalue()


def read_index(data: bytes) -> np.ndarray:
    """Parse `.npy` bytes of a shard index, never unpickling: a 1-D structured array with the INDEX_FIELDS,
    returned as INDEX_DTYPE. ValueError ("not a shard index ...") for any other array, negative offsets or
    sizes, or bytes that are no `.npy`."""
    with _NPY_HEADER_LOCK:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    names = arr.dtype.names or ()
    missing = [f for f in INDEX_FIELDS if f not in names]
    if arr.ndim != 1 or missing:
        raise ValueError(f"not a shard index: dtype {arr.dtype}, shape {arr.shape}; needs 1-D with {INDEX_FIELDS}")
    out = np.empty(len(arr), INDEX_DTYPE)
    for f in INDEX_FIELDS:
        out[f] = arr[f]
    if len(out) and min(int(out[f].min()) for f in INDEX_FIELDS) < 0:
        raise ValueError("not a shard index: negative offsets or sizes")
    return out


def index_matrix(index: np.ndarray) -> np.ndarray:
    """A shard index as int64 ``[n_samples, 4]``, columns in INDEX_FIELDS order (what the loader's kernels take)."""
    return np.stack([index[f].astype(np.int64) for f in INDEX_FIELDS], axis=1)


@dataclass(frozen=True)
class Member:
    """One tar member as `iter_members` finds it: its name, the offset of its data and its size in bytes."""

    name: str
    offset: int
    size: int


def iter_members(
    stream: BinaryIO, want: Callable[[str], bool] = lambda name: False
) -> Iterator[tuple[Member, bytes | None]]:
    """The members of a tar read front to back from a binary stream (a shard with no readable index),
    parsing the ustar headers by hand as `ustar_header` writes them, with the data of those whose name
    `want` accepts (None for the others, which are skipped); stops at the end-of-archive blocks.
    ValueError naming the byte offset for a header whose checksum or size field is unreadable, or data
    cut short."""
    offset = 0
    while True:
        header = stream.read(BLOCK)
        if len(header) < BLOCK or not any(header):
            return
        stored = header[148:156].strip(b"\0 ")
        if not stored or int(stored, 8) != sum(header[:148]) + 8 * 32 + sum(header[156:]):
            raise ValueError(f"tar header at byte {offset}: checksum does not match")
        size_field = header[124:136].strip(b"\0 ")
        if not size_field.isdigit():
            raise ValueError(f"tar header at byte {offset}: unreadable size field {size_field!r}")
        size = int(size_field, 8)
        name = header[:100].split(b"\0", 1)[0]
        prefix = header[345:500].split(b"\0", 1)[0]
        full = (prefix + b"/" + name if prefix else name).decode("utf-8", "replace")
        member = Member(full, offset + BLOCK, size)
        data = _read_exactly(stream, padded(size), member, keep=want(full))
        yield member, data[:size] if data is not None else None
        offset += BLOCK + padded(size)


def _read_exactly(stream: BinaryIO, nbytes: int, member: Member, *, keep: bool) -> bytes | None:
    parts: list[bytes] = []
    left = nbytes
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise ValueError(f"tar member {member.name!r} at byte {member.offset}: data cut short")
        if keep:
            parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts) if keep else None
