"""The ingest stage: sources (local, S3, Kafka) -> raw_docs + quarantine, exactly once.

The driver recovers from an interrupted run, plans work units (objects not in the ledger, Kafka offset
ranges past the stored offsets), ships them to tasks through a small DataFrame and `mapInArrow`, and commits
the files the tasks wrote: quarantine first, then raw_docs with the ledger and offsets in the same snapshot
summary (see `pipelines.sources.state` for why that order is safe under SIGKILL at any point).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from pyarrow import fs as pafs
from pyiceberg.table import Table
from pyspark.sql import SparkSession

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import TokenmillError, worker_error
from pipelines.lake import summary as keys
from pipelines.secrets import resolve_settings
from pipelines.sources import commit, lease
from pipelines.sources import state as ingest_state
from pipelines.sources.config import KafkaSource
from pipelines.sources.failpoints import failpoint
from pipelines.sources.plan import plan_run, settle
from pipelines.sources.state import IngestState
from pipelines.sources.tasks import TaskContext, discard_files, pack_units, run_units
from pipelines.sources.units import Unit, UnitResult
from pipelines.stages.report import StageReport
from pipelines.storage import filesystem
from schemas.quarantine import TABLE as QUARANTINE
from schemas.raw_docs import TABLE as RAW_DOCS

log = logging.getLogger(__name__)

STAGE = "ingest"
UNITS_PER_CORE = 8


def _execute(spark: SparkSession, groups: list[list[Unit]], ctx: TaskContext) -> list[UnitResult]:
    """Run each group of units as one Spark task; return every unit's result.

    Units and results are a few small frozen dataclasses per task (the documents go from the tasks straight to Parquet
    files), so they travel as an RDD of Python objects: a DataFrame with `mapInArrow` would add a SQL plan and
    Arrow conversions, about 0.2 s a run on 2 cores, for nothing. Spark still schedules and retries the tasks.
    """
    sc = spark.sparkContext
    sc.setJobDescription(f"ingest: {sum(len(g) for g in groups)} units in {len(groups)} tasks")

    def task(part: Iterable[list[Unit]]) -> Iterator[UnitResult]:
        for units in part:
            yield from run_units(units, ctx)

    try:
        return sc.parallelize(groups, len(groups)).mapPartitions(task).collect()
    except Exception as exc:
        _discard_run_files(ctx)
        raise IngestTaskError(f"ingest task failed: {worker_error(exc)}") from exc


class IngestTaskError(TokenmillError):
    """A Spark task of the ingest stage failed (after Spark's retries); the run committed nothing."""

    exit_code = 16


def _discard_run_files(ctx: TaskContext) -> None:
    """Delete the data files this run's tasks wrote before the job failed (nothing was committed)."""
    prefix = f"ingest-{ctx.run_id[:8]}-"
    for directory in (ctx.raw_dir, ctx.quarantine_dir):
        fs, path = filesystem(directory, ctx.lake_s3)
        try:
            infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except OSError:
            continue
        discard_files([f"{directory.split('://', 1)[0]}://{i.path}" for i in infos
                       if i.base_name.startswith(prefix)], ctx.lake_s3)


def _summary(cfg: Config, run_id: str, counts: dict[str, int], extra: dict[str, str] | None = None) -> dict[str, str]:
    props = {keys.key(k): str(v) for k, v in sorted(counts.items())}
    return lake.snapshot_summary(cfg, STAGE, run_id, {**props, **(extra or {})})


def run_ingest(spark: SparkSession, cfg: Config) -> StageReport:
    """Read every source in `cfg.sources` into raw_docs and quarantine, appending only what is new.

    Counts: records_read (= raw_docs + quarantined), raw_docs, quarantined, quarantine_<code> each,
    objects_read, objects_skipped, objects_deferred, bytes_read (object bytes as stored, Kafka value bytes).
    A run with nothing new commits nothing and reports zeros. Concurrent runs: see `pipelines.sources.commit`
    (a run whose input another run committed first fails with ConcurrentIngestError, committing nothing).
    """
    run_id = uuid.uuid4().hex
    catalog = lake.open_catalog(cfg.lake)
    raw = lake.ensure_table(catalog, cfg.lake.namespace, "raw_docs")
    quarantine = lake.ensure_table(catalog, cfg.lake.namespace, "quarantine")
    with lease.held(raw, run_id):
        return _run(spark, cfg, run_id, raw, quarantine)


def _run(spark: SparkSession, cfg: Config, run_id: str, raw: Table, quarantine: Table) -> StageReport:
    # the same outputs whether or not anything was new: a no-op run leaves the DVC pointer byte-identical
    report = StageReport(stage=STAGE, outputs={"raw_docs": f"{cfg.lake.namespace}.raw_docs",
                                               "quarantine": f"{cfg.lake.namespace}.quarantine"})
    orphans = [r for r in ingest_state.orphan_runs(raw, quarantine) if not lease.is_alive(raw, r)]
    if orphans:
        ingest_state.delete_orphans(quarantine, orphans, _summary(cfg, run_id, {}))
        report.counts["recovered_runs"] = len(orphans)
    swept = lease.sweep_dead_files(raw, quarantine, run_id)
    if swept:
        report.counts["orphan_files_removed"] = swept
    planned_snapshot = _snapshot_id(raw)
    state = ingest_state.load_state(raw)
    plan = plan_run(list(cfg.sources), state)
    log.info("ingest %s: %d units, %d objects already ingested", run_id[:8], len(plan.units), plan.objects_skipped)

    results: list[UnitResult] = []
    if plan.units:
        ctx = TaskContext(
            sources=_resolved_sources(cfg), run_id=run_id, ingested_at=datetime.now(UTC),
            raw_dir=lake.data_dir(raw), quarantine_dir=lake.data_dir(quarantine),
            max_record_bytes=cfg.ingest.max_record_bytes, raw_limit=cfg.ingest.quarantine_raw_bytes,
            file_bytes=cfg.ingest.file_bytes, max_expansion=cfg.ingest.max_expansion, lake_s3=lake.table_s3(raw),
            raw_file_schema=lake.file_schema(raw, RAW_DOCS.arrow_schema),
            quarantine_file_schema=lake.file_schema(quarantine, QUARANTINE.arrow_schema),
        )
        n_tasks = cfg.ingest.parallelism or spark.sparkContext.defaultParallelism * UNITS_PER_CORE
        results = _execute(spark, pack_units(plan.units, n_tasks), ctx)
    failpoint("ingest.after_tasks")
    outcome = settle(plan, results, list(cfg.sources), state, run_id)
    report.counts.update(outcome.counts)
    if not outcome.changed:
        log.info("ingest: nothing new")
        report.snapshots = {"raw_docs": _snapshot_id(raw), "quarantine": _snapshot_id(quarantine)}
        return report

    planned: commit.Planned = (planned_snapshot, state, outcome.state)
    quarantine_committed = False
    try:
        planned = commit.catch_up(raw, planned, run_id)  # fail before committing anything when we can
        if outcome.quarantine_files:
            report.snapshots["quarantine"] = lake.commit_files(
                quarantine, outcome.quarantine_files, _summary(cfg, run_id, outcome.counts))
            quarantine_committed = True
            failpoint("ingest.after_quarantine_commit")
        else:
            report.snapshots["quarantine"] = _snapshot_id(quarantine)

        def commit_raw(new_state: IngestState) -> None:
            extra = {**ingest_state.write_ledger(raw, new_state, run_id),
                     **ingest_state.offsets_property(new_state.offsets)}
            failpoint("ingest.before_raw_commit")
            report.snapshots["raw_docs"] = lake.commit_files(raw, outcome.raw_files,
                                                             _summary(cfg, run_id, outcome.counts, extra))

        commit.commit_raw(raw, planned, run_id, commit_raw)
    except Exception:
        _undo(cfg, run_id, quarantine, outcome.raw_files,
              [] if quarantine_committed else outcome.quarantine_files, quarantine_committed)
        raise
    failpoint("ingest.after_raw_commit")
    log.info("ingest %s: %s", run_id[:8], outcome.counts)
    return report


def _resolved_sources(cfg: Config) -> tuple[Any, ...]:
    """The sources with Kafka client secrets resolved here, on the driver, so tasks need no environment of
    their own (the values travel inside the tasks, as Spark ships any closure, and are never logged)."""
    return tuple(s.model_copy(update={"client": resolve_settings(s.client, f"sources.{i}.client")})
                 if isinstance(s, KafkaSource) else s for i, s in enumerate(cfg.sources))


def _undo(cfg: Config, run_id: str, quarantine: Table, files: list[str], quarantine_files: list[str],
          quarantine_committed: bool) -> None:
    """After a failed commit: remove this run's quarantine rows (when committed) and its uncommitted data
    files, best effort (what is left is removed by the next run's recovery or by gc)."""
    try:
        if quarantine_committed:
            ingest_state.delete_orphans(quarantine, [run_id], _summary(cfg, run_id, {}))
        discard_files([*files, *quarantine_files], lake.table_s3(quarantine))
    except Exception:
        log.warning("ingest %s: could not undo the failed run's writes", run_id[:8], exc_info=True)


def _snapshot_id(table: Any) -> int | None:
    snap = table.current_snapshot()
    return snap.snapshot_id if snap else None
