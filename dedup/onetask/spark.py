"""The one-task plan of dedup.spark.duplicates: the local engine's dedup (dedup.local.duplicates_local) inside
ONE Spark task on an executor, so that the driver holds nothing that grows with the corpus.

The task gets its input in one of two ways. From a persisted step: a `StepReader` (the step's file list,
filter and S3 settings, a plain value) is shipped to the task, which reads the columns it needs itself with
pyarrow, and the candidates' texts the same way when verify='shingles' needs them; a one-row DataFrame
starts it. From any other DataFrame: the needed columns are moved into one partition by one shuffle. Its
DUPLICATE rows are computed once: materialized as the persisted step `duplicates` (Steps.materialize, so a
re-run after a kill reuses them), with the task's component report (dedup.local.component_stats), its
cores and where its time went (`read_ms`, `dedup_ms`, `texts_ms`) kept as the step's notes, so nothing is
deduplicated twice. A retried task gives the same rows and component report.

Memory: the task's Python worker holds what the driver plan would collect (dedup.spark.driver_plan_bytes)
plus the local engine's working copies; docs/dedup.md gives the measured ratio.

Cores: a Spark task's share is spark.task.cpus (dedup.threads). The one task is the only task of its job,
so it uses every core of the executor it runs on (`executor_cores`: spark.executor.cores when set, the N of
local[N], else 1) for pyarrow and numba while it runs, and gives them back afterwards (the Python worker
runs later tasks too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import Accumulator, AccumulatorParam
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from dedup.config import DedupConfig
from dedup.local import DUPLICATE_SCHEMA, STAT_NAMES, TextFetch, component_stats, duplicates_local
from dedup.steps.spark import ArrowMap, ColumnReader, Steps
from dedup.threads import executor_cores_of, thread_budget

log = logging.getLogger(__name__)

STEP = "duplicates"


class OverBudget(Exception):
    """The candidates' texts would take a plan past its budget."""


def read_texts(reader: ColumnReader, room: int | None = None) -> TextFetch:
    """A TextFetch reading the texts of the given doc_ids with `reader`, batch by batch; past `room` bytes
    (None: no bound) it raises OverBudget."""
    def fetch(ids: pa.Array) -> pa.Array:
        got, used = [], 0
        batches = reader(["doc_id", "text"], ids)
        for batch in batches:
            used += batch.nbytes
            if room is not None and used > room:
                raise OverBudget(f"{len(ids)} candidates' texts take over {room} bytes, what is left")
            got.append(batch)
        table = pa.Table.from_batches(got, schema=batches.schema)
        return table["text"].combine_chunks().take(pc.index_in(ids, value_set=table["doc_id"].combine_chunks()))

    return fetch


def executor_cores(spark: SparkSession) -> int:
    """Cores of one executor of `spark` (dedup.threads.executor_cores_of)."""
    conf = spark.sparkContext.getConf()
    return executor_cores_of(conf.get("spark.master", "") or "", conf.get("spark.executor.cores", None))


def _timed(fetch: TextFetch, spent: list[float]) -> TextFetch:
    """`fetch`, adding the seconds it takes to spent[0]."""
    def timed(ids: pa.Array) -> pa.Array:
        start = time.perf_counter()
        try:
            return fetch(ids)
        finally:
            spent[0] += time.perf_counter() - start

    return timed


class _MaxNotes(AccumulatorParam):  # type: ignore[type-arg]
    """Notes of the one task: a retried attempt reports the same values, so the maximum, never the sum."""

    def zero(self, value: dict[str, int]) -> dict[str, int]:
        return {}

    def addInPlace(self, value1: dict[str, int], value2: dict[str, int]) -> dict[str, int]:
        return {k: max(value1.get(k, 0), value2.get(k, 0)) for k in value1.keys() | value2.keys()}


def _dedup_task(cfg: DedupConfig, columns: list[str], reader: ColumnReader | None, fetch_texts: bool,
                notes: Accumulator, cores: int) -> ArrowMap:  # type: ignore[type-arg]
    """mapInArrow function of the one task: its input rows (or, with `reader`, the rows it reads itself)
    deduplicated by the local engine on `cores` cores; yields DUPLICATE_SCHEMA rows, reports the component
    report."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pieces = [b for b in batches if b.num_rows]  # with a reader: the one-row trigger
        with thread_budget(cores):
            start = time.perf_counter()
            if reader is not None:
                table = reader(columns, None).read_all()
            elif pieces:
                table = pa.Table.from_batches(pieces).select(columns)
            else:
                return
            if table.num_rows == 0:
                return
            fetched = [0.0]
            fetch = _timed(read_texts(reader), fetched) if fetch_texts and reader is not None else None
            read = time.perf_counter()
            out = duplicates_local(table, cfg=cfg, texts=fetch)
        # the component report, and where the task's time went (ms: reading its columns, deduplicating, and
        # of that, reading the candidates' texts)
        notes.add({**component_stats(out), "cores": cores, "read_ms": round(1000 * (read - start)),
                   "dedup_ms": round(1000 * (time.perf_counter() - read)), "texts_ms": round(1000 * fetched[0])})
        log.info("dedup in one task on %d cores: %d documents (%.1f MB), %d removed", cores, table.num_rows,
                 table.nbytes / 1e6, out.num_rows)
        yield from out.replace_schema_metadata(None).cast(DUPLICATE_SCHEMA).to_batches()

    return run


def duplicates_in_one_task(df: DataFrame, cfg: DedupConfig, columns: list[str], *, steps: Steps | None = None,
                           reader: ColumnReader | None = None) -> tuple[DataFrame, dict[str, int]]:
    """(DUPLICATE rows, component report) of `df` by the one-task plan: `columns` of `df` deduplicated by
    `duplicates_local` in one task; read there by `reader` (a ColumnReader of the same rows, e.g.
    Steps.reader of the persisted step `df` reads; it also fetches the candidates' texts when verify=
    'shingles' and `columns` has no text) or moved there by one shuffle. The rows are the step STEP of
    `steps` (without a folder, or without steps: a local checkpoint)."""
    spark = df.sparkSession
    steps = steps if steps is not None else Steps(spark, None)
    notes = spark.sparkContext.accumulator({}, _MaxNotes())
    fetch_texts = cfg.near and cfg.verify == "shingles" and "text" not in columns
    if reader is None and fetch_texts:
        raise ValueError("verify='shingles' without a reader needs the 'text' column among the columns")
    source = spark.range(1, numPartitions=1) if reader is not None else df.select(*columns).repartition(1)
    task = _dedup_task(cfg, columns, reader, fetch_texts, notes, executor_cores(spark))
    rows = steps.materialize(STEP, lambda: source, transform=task,
                             schema=from_arrow_schema(DUPLICATE_SCHEMA), notes=lambda: dict(notes.value))
    report = steps.notes(STEP)
    return rows, {name: int(report.get(name, 0)) for name in STAT_NAMES}
