"""What a task does with its work units (no Spark here: `pipelines.stages.ingest.spark` ships these).

Units (`pipelines.sources.units`) are read by the kind of source that made them (`pipelines.sources.kinds`).
A task writes raw_docs and quarantine Parquet files (rolled at `file_bytes`) and returns, per unit, a
`UnitResult` naming the files and what they hold; it commits nothing.
"""

from __future__ import annotations

import errno
import gc
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from pipelines import lake
from pipelines.sources import kinds
from pipelines.sources.config import KafkaSource, LocalSource, S3Source
from pipelines.sources.failpoints import failpoint
from pipelines.sources.objects import TransientReadError
from pipelines.sources.units import Unit, UnitResult
from pipelines.storage import S3Options, filesystem
from schemas import quarantine as quarantine_schema
from schemas import raw_docs as raw_docs_schema

log = logging.getLogger(__name__)

Source = LocalSource | S3Source | KafkaSource


@dataclass(frozen=True)
class TaskContext:
    """Everything a task needs besides its units; plain values so it pickles cheaply."""

    sources: tuple[Source, ...]
    run_id: str
    ingested_at: datetime
    raw_dir: str
    quarantine_dir: str
    max_record_bytes: int
    raw_limit: int
    file_bytes: int
    max_expansion: int = 1000
    lake_s3: S3Options | None = None  # how to reach an s3:// warehouse (endpoint, region)
    # the data files' schemas with the live tables' field ids (lake.file_schema); default: the table definitions'
    # schemas without ids, derived when a context is built rather than at import, which would cost every Python
    # worker pyiceberg's pyarrow bridge (the stage always passes them)
    raw_file_schema: pa.Schema = field(default_factory=lambda: raw_docs_schema.TABLE.arrow_schema)
    quarantine_file_schema: pa.Schema = field(default_factory=lambda: quarantine_schema.TABLE.arrow_schema)


class RollingWriter:
    """Collects column batches of one table and writes them as Parquet data files of about `file_bytes`."""

    def __init__(self, directory: str, schema: pa.Schema, ctx: TaskContext, prefix: str) -> None:
        self.directory, self.schema, self.ctx, self.prefix = directory, schema, ctx, prefix
        self.pending: list[pa.Table] = []
        self.pending_bytes = 0
        self.paths: list[str] = []

    def add(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:
            return
        self.pending.append(batch)
        self.pending_bytes += batch.nbytes
        if self.pending_bytes >= self.ctx.file_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        n = table.num_rows
        table = table.append_column("ingested_at", pa.repeat(pa.scalar(self.ctx.ingested_at, pa.timestamp("us", "UTC")), n))
        table = table.append_column("run_id", pa.repeat(pa.scalar(self.ctx.run_id, pa.large_string()), n))
        try:
            path = lake.write_data_file(self.directory, table.select(self.schema.names).cast(self.schema),
                                        prefix=self.prefix, s3=self.ctx.lake_s3)
        except OSError as exc:
            if exc.errno == errno.ENOSPC or "No space left" in str(exc):
                raise OSError(errno.ENOSPC, f"no space left on device: {self.directory}") from None
            raise
        if path:
            self.paths.append(path)
        self.pending, self.pending_bytes = [], 0


def run_unit(unit: Unit, ctx: TaskContext) -> UnitResult:
    """Read one unit to data files with the kind of source that made it.

    An object whose store fails in a way that may pass (`TransientReadError`) is tried READ_TRIES times; after
    that the result has `deferred` (the reason) and no files: the object is not recorded as ingested, so the
    next run reads it again.
    """
    for attempt in range(1, READ_TRIES + 1):
        try:
            return _run_unit_once(unit, ctx)
        except TransientReadError as exc:
            if attempt == READ_TRIES:
                log.warning("%s; %d tries failed, left for the next run", exc, READ_TRIES)
                return UnitResult(unit=unit, deferred=str(exc)[:500])
            log.info("%s; trying again (%d/%d)", exc, attempt + 1, READ_TRIES)
            time.sleep(READ_RETRY_DELAY_S * attempt)
    raise AssertionError("unreachable")


READ_TRIES = 3
READ_RETRY_DELAY_S = 0.5


def discard_files(paths: list[str], s3: S3Options | None = None) -> None:
    """Delete data files a failed attempt wrote (never committed, so nothing refers to them)."""
    for uri in paths:
        fs, path = filesystem(uri, s3)
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            pass


def _run_unit_once(unit: Unit, ctx: TaskContext) -> UnitResult:
    prefix = f"ingest-{ctx.run_id[:8]}"
    raw_w = RollingWriter(ctx.raw_dir, ctx.raw_file_schema, ctx, prefix)
    q_w = RollingWriter(ctx.quarantine_dir, ctx.quarantine_file_schema, ctx, prefix)
    errors: Counter[str] = Counter()
    n_raw = 0
    reading = kinds.for_unit(unit).read(unit, ctx.sources[unit.source], ctx)
    try:
        for docs, bad in reading.batches:
            raw_w.add(docs)
            q_w.add(bad)
            n_raw += docs.num_rows
            if bad.num_rows:
                errors.update(bad.column("error_code").to_pylist())
        raw_w.flush()
        q_w.flush()
    except BaseException:
        discard_files(raw_w.paths + q_w.paths, ctx.lake_s3)
        raise
    failpoint("ingest.task_written")
    return UnitResult(unit=unit, raw_files=raw_w.paths, quarantine_files=q_w.paths, raw_docs=n_raw,
                      quarantined=sum(errors.values()), errors=dict(errors), **reading.outcome())


# CPython's cyclic collector runs after every 700 net container allocations by default. Reading a unit
# allocates a few per record (parsed JSON, Kafka consumer records), none in reference cycles, so those
# thousands of passes free nothing; with this first-generation threshold they mostly go (about a quarter of
# a Kafka unit's time here). Objects in cycles are still collected, a little later.
UNIT_GC_THRESHOLD = (100_000, 50, 100)


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Raise the collector's thresholds to UNIT_GC_THRESHOLD for the block, then restore them."""
    before = gc.get_threshold()
    gc.set_threshold(*UNIT_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def run_units(units: Iterable[Unit], ctx: TaskContext) -> Iterator[UnitResult]:
    """`run_unit` for each unit in turn (with fewer collector passes while a unit runs)."""
    for unit in units:
        with fewer_gc_passes():
            result = run_unit(unit, ctx)
        yield result


def pack_units(units: list[Unit], n_tasks: int) -> list[list[Unit]]:
    """Greedy largest-first packing of units into at most `n_tasks` groups of similar weight (`Unit.weight`:
    object size in bytes, or 1 KiB per Kafka offset). Deterministic; every unit lands in exactly one group;
    no group is empty."""
    if n_tasks <= 0:
        raise ValueError(f"n_tasks={n_tasks}")
    n = min(n_tasks, len(units))
    if n == 0:
        return []
    groups: list[list[Unit]] = [[] for _ in range(n)]
    loads = [0] * n
    for u in sorted(units, key=lambda u: -u.weight()):
        i = loads.index(min(loads))
        groups[i].append(u)
        loads[i] += u.weight()
    return groups
