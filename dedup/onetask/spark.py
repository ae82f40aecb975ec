"""The one-task plan of dedup.spark.duplicates: the local engine's dedup (dedup.local.duplicates_local) inside
ONE Spark task on an executor, so that the driver holds nothing that grows with the corpus.

The task gets its input in one of two ways. From a persisted step: a `StepReader` (the step's file list,
filter and S3 settings, a plain value) is shipped to the task, which reads the columns it needs itself with
pyarrow, and the candidates' texts the same way when verify='shingles' needs them; a one-row DataFrame
starts it. From any other DataFrame: the needed columns are moved into one partition by one shuffle. Its
DUPLICATE rows are computed once: materialized as the persisted step `duplicates` (Steps.materialize, so a
re-run after a kill reuses them), with the task's component report (dedup.local.component_stats) kept as
the step's notes, so nothing is deduplicated twice. A retried task gives the same rows and report.

Memory: the task's Python worker holds what the driver plan would collect (dedup.spark.driver_plan_bytes)
plus the local engine's working copies; docs/dedup.md gives the measured ratio.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import Accumulator, AccumulatorParam
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import from_arrow_schema

from dedup.config import DedupConfig
from dedup.local import DUPLICATE_SCHEMA, STAT_NAMES, TextFetch, component_stats, duplicates_local
from dedup.steps.spark import ArrowMap, ColumnReader, Steps

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


class _MaxNotes(AccumulatorParam):  # type: ignore[type-arg]
    """Notes of the one task: a retried attempt reports the same values, so the maximum, never the sum."""

    def zero(self, value: dict[str, int]) -> dict[str, int]:
        return {}

    def addInPlace(self, value1: dict[str, int], value2: dict[str, int]) -> dict[str, int]:
        return {k: max(value1.get(k, 0), value2.get(k, 0)) for k in value1.keys() | value2.keys()}


def _dedup_task(cfg: DedupConfig, columns: list[str], reader: ColumnReader | None, fetch_texts: bool,
                notes: Accumulator) -> ArrowMap:  # type: ignore[type-arg]
    """mapInArrow function of the one task: its input rows (or, with `reader`, the rows it reads itself)
    deduplicated by the local engine; yields DUPLICATE_SCHEMA rows, reports the component report."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pieces = [b for b in batches if b.num_rows]  # with a reader: the one-row trigger
        if reader is not None:
            table = reader(columns, None).read_all()
        elif pieces:
            table = pa.Table.from_batches(pieces).select(columns)
        else:
            return
        if table.num_rows == 0:
            return
        fetch = read_texts(reader) if fetch_texts and reader is not None else None
        out = duplicates_local(table, cfg=cfg, texts=fetch)
        notes.add(component_stats(out))
        log.info("dedup in one task: %d documents (%.1f MB), %d removed", table.num_rows, table.nbytes / 1e6,
                 out.num_rows)
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
    rows = steps.materialize(STEP, lambda: source, transform=_dedup_task(cfg, columns, reader, fetch_texts, notes),
                             schema=from_arrow_schema(DUPLICATE_SCHEMA), notes=lambda: dict(notes.value))
    report = steps.notes(STEP)
    return rows, {name: int(report.get(name, 0)) for name in STAT_NAMES}
