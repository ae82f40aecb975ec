"""Resuming a grown JSON-lines object from where the last run stopped reading it.

The ledger keeps, per plain (uncompressed) JSON-lines object, a `ResumePoint`: the byte offset just past the
last complete line read (`read_bytes`), the number of lines before it (`read_lines`), and the sha256 of the
first and of the last `BLOCK` bytes before that offset. When the object is listed again with another size or
ETag/mtime, the task reads those two blocks again: if both still hash the same, the object only grew (the
rule: "its first and last read blocks are unchanged"), and reading goes on from `read_bytes` with line
numbers from `read_lines`, so no line is read twice. Otherwise it is a rewritten object: read whole as a new
version (curate, `pipelines.stages.curate.spark`, keeps the newest version of each doc_id).

Neither S3's ETag nor a local mtime can say that an object only grew (both change on any write), hence the
hashes. A change inside the object between the two blocks goes unseen: appends are assumed to be appends
once both ends of what was read are intact. An object whose last read line had no line end (a writer caught
mid-line, or a file without a final newline) is not resumed: that line was read as a record and may since
have grown, so the object counts as rewritten. Compressed and Parquet objects are never resumed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

BLOCK = 64 * 1024  # bytes hashed at each end of what was read


@dataclass(frozen=True)
class ResumePoint:
    """Where the last read of an object stopped: byte offset past its last complete line, lines before it,
    and the sha256 (hex) of bytes [0, min(read_bytes, BLOCK)) and [read_bytes - min(read_bytes, BLOCK),
    read_bytes)."""

    read_bytes: int
    read_lines: int
    head_sha256: str
    tail_sha256: str

    def blocks(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(offset, length) of the head and the tail block."""
        n = min(self.read_bytes, BLOCK)
        return (0, n), (self.read_bytes - n, n)

    def matches(self, head: bytes, tail: bytes) -> bool:
        """True when `head` and `tail` (the bytes now at `blocks()`) hash as recorded."""
        return (hashlib.sha256(head).hexdigest() == self.head_sha256
                and hashlib.sha256(tail).hexdigest() == self.tail_sha256)


def resumable(kind: str, codec: str | None) -> bool:
    """Only plain JSON lines can be read on from a byte offset."""
    return kind == "jsonl" and codec is None


class ReadTracker:
    """Follows the bytes of an uncompressed stream read from `start` (lines `lines` before it) and gives the
    `ResumePoint` at its last line end. `head` holds the stream's first bytes (up to BLOCK) when resuming,
    `tail` the BLOCK bytes before `start`.

    >>> t = ReadTracker()
    >>> for chunk in (b'{"a":1}\\n{"b"', b':2}\\n{"c"'):
    ...     _ = t.feed(chunk)
    >>> p = t.point()
    >>> (p.read_bytes, p.read_lines)
    (16, 2)
    """

    def __init__(self, start: int = 0, lines: int = 0, head: bytes = b"", tail: bytes = b"") -> None:
        self.pos = start
        self.lines = lines
        self.head = head[:BLOCK]
        self.recent = tail[-BLOCK:]  # the last BLOCK bytes of the stream so far
        self.end = start  # offset past the last line end seen
        self.end_lines = lines
        self.end_block = self.recent  # the BLOCK bytes before `end`

    def feed(self, chunk: bytes) -> bytes:
        """Account for `chunk` (the next bytes of the stream); returns it unchanged."""
        if len(self.head) < BLOCK:
            self.head += chunk[: BLOCK - len(self.head)]
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            upto = nl + 1  # (copy at most one block of the chunk, however big it is)
            self.end_block = chunk[upto - BLOCK:upto] if upto >= BLOCK else (self.recent + chunk[:upto])[-BLOCK:]
            self.end = self.pos + nl + 1
            self.lines += chunk.count(b"\n")
            self.end_lines = self.lines
        self.recent = (self.recent + chunk)[-BLOCK:] if len(chunk) < BLOCK else chunk[-BLOCK:]
        self.pos += len(chunk)
        return chunk

    def point(self) -> ResumePoint:
        n = min(self.end, BLOCK)
        return ResumePoint(self.end, self.end_lines, hashlib.sha256(self.head[:n]).hexdigest(),
                           hashlib.sha256(self.end_block[len(self.end_block) - n:]).hexdigest())
