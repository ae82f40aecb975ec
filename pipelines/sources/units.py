"""Work units of an ingest run and their results: frozen dataclasses, small and picklable (Spark ships them).

A unit names one piece of one source (`source` is its index in `cfg.sources`) and the `kind` of source that
plans, reads and settles it (`pipelines.sources.kinds`). A task reads a unit to raw_docs/quarantine data files
and returns a `UnitResult`; it commits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pipelines.sources.resume import ResumePoint

KAFKA_OFFSET_WEIGHT = 1024  # a Kafka offset weighs like this many object bytes when units are spread over tasks


@dataclass(frozen=True)
class ObjectUnit:
    """One object of a local or S3 source: `uri`, `size` and `etag` as listed, `path` to open when it differs
    from the URI's (a local name that is not UTF-8); `changed` when an earlier version was ingested, and
    `resume`, where the last read of it stopped (a plain JSON-lines object that may only have grown)."""

    kind: ClassVar[str] = "object"
    source: int
    uri: str
    size: int
    etag: str
    path: str | None = None
    changed: bool = False
    resume: ResumePoint | None = None

    def weight(self) -> int:
        return 1 + self.size  # +1: an empty object still costs a task some work

    def records(self) -> int:
        """Records waiting in the unit: 1 for an object (its records are known only once it is read)."""
        return 1


@dataclass(frozen=True)
class KafkaUnit:
    """Offsets [start, end) of one topic partition, with an optional share of the source's byte bound."""

    kind: ClassVar[str] = "kafka"
    source: int
    topic: str
    partition: int
    start: int
    end: int
    max_bytes: int | None = None

    def weight(self) -> int:
        return 1 + (self.end - self.start) * KAFKA_OFFSET_WEIGHT

    def records(self) -> int:
        """Records waiting in the unit: its offsets."""
        return self.end - self.start


Unit = ObjectUnit | KafkaUnit


@dataclass(frozen=True)
class UnitResult:
    """What a task did with one unit: the data files it wrote and what they hold (`raw_docs` + `quarantined`
    records, `errors` per quarantine code), `bytes_read`; `deferred` (the reason) when the unit was left for
    the next run (no files then). Kind-specific outcome: `next_offset`/`complete` for Kafka (where the read
    stopped), `resumed`/`point` for objects (read on from the last run's resume point; where this read stopped).
    """

    unit: Unit
    raw_files: list[str] = field(default_factory=list)
    quarantine_files: list[str] = field(default_factory=list)
    raw_docs: int = 0
    quarantined: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    deferred: str | None = None
    next_offset: int | None = None
    complete: bool = True
    resumed: bool = False
    point: ResumePoint | None = None
