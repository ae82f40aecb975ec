"""`tokenmill run --follow`: one Spark session, a cycle of ingest, curate, tokenize and shard whenever the
interval has passed or enough records wait, a published manifest at the end of each cycle.

Every stage commits atomically (one Iceberg commit per table, the manifest published last), so a cycle
stopped anywhere leaves the lake at the end of some earlier commit. Signals:

- the first SIGTERM or SIGINT lets the cycle in progress finish (or stops the wait between cycles), then
  the run returns;
- a second one abandons the cycle: :class:`CycleAbandoned` is raised in the main thread and the stage in
  progress commits nothing (the next run reads its input again).

After a SIGKILL nothing is lost or doubled either: ingest's Kafka offsets and object ledger live in the
raw_docs commit, and the first cycle of every run runs all stages, catching up on whatever an interrupted
run had committed upstream.

Freshness: for each document a cycle ingested from Kafka and published in its manifest, the seconds from
the record's Kafka timestamp to the moment that manifest was published.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.config import Config
from pipelines.errors import TokenmillError
from pipelines.lake import summary as keys
from pipelines.stages.report import StageReport

if TYPE_CHECKING:
    from pipelines.lake.spark import SparkSession

log = logging.getLogger(__name__)

DOWNSTREAM = ("curate", "tokenize", "shard")


class CycleAbandoned(TokenmillError):
    """A second SIGTERM/SIGINT abandoned the cycle in progress; nothing of its current stage was committed."""

    exit_code = 20


@dataclass
class CycleReport:
    """One cycle: when it started, how long it took, what ingest read, the manifest it published and the
    freshness of the Kafka documents it published (seconds, p50/p95 over them)."""

    cycle: int
    started: float
    seconds: float
    records_read: int
    stages: list[str]
    manifest: str | None = None
    published: float | None = None
    freshness: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "freshness"}
        out.update(freshness_stats(self.freshness))
        return out


def freshness_stats(values: list[float]) -> dict[str, Any]:
    """``{"published_docs", "freshness_p50_s", "freshness_p95_s", "freshness_max_s"}`` (None when empty)."""
    a = np.asarray(values, dtype=np.float64)
    pick = (lambda q: round(float(np.percentile(a, q)), 3)) if a.size else (lambda q: None)
    return {
        "published_docs": int(a.size),
        "freshness_p50_s": pick(50),
        "freshness_p95_s": pick(95),
        "freshness_max_s": round(float(a.max()), 3) if a.size else None,
    }


def due(now: float, last_start: float | None, interval: float, waiting: int | None, min_records: int) -> bool:
    """Whether the next cycle starts now: the first one at once, then `interval` seconds after the last
    start, or earlier when `min_records` (> 0) records wait.

    >>> due(10.0, None, 60, None, 0), due(10.0, 0.0, 60, 5, 0), due(10.0, 0.0, 60, 5, 5), due(61.0, 0.0, 60, 0, 5)
    (True, False, True, True)
    """
    if last_start is None or now - last_start >= interval:
        return True
    return min_records > 0 and waiting is not None and waiting >= min_records


class StopFlag:
    """What the signal handlers set: `stopping` after the first signal; a second during a cycle raises
    CycleAbandoned in the main thread."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.in_cycle = False
        self.signals = 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            log.warning("follow: %s: %s", name, "finishing the cycle in progress, then stopping"
                        if self.in_cycle else "stopping")
            self.stopping.set()
        elif self.in_cycle:
            raise CycleAbandoned(f"run --follow: the cycle in progress was abandoned on a second {name}; "
                                 "the stage in progress committed nothing")

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Install the handlers for SIGTERM and SIGINT (main thread only), restoring the old ones after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self.handle) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def waiting_records(cfg: Config) -> int:
    """Records waiting in the sources: Kafka offsets past the stored ones, plus new or changed objects."""
    from pipelines import lake
    from pipelines.sources import state as ingest_state
    from pipelines.sources.plan import plan_run

    catalog = lake.open_catalog(cfg.lake)
    raw = lake.ensure_table(catalog, cfg.lake.namespace, "raw_docs")
    plan = plan_run(list(cfg.sources), ingest_state.load_state(raw))
    return sum(u.records() for u in plan.units)


def published_freshness(cfg: Config, raw_snapshot: int | None, published: float) -> list[float]:
    """Seconds from each Kafka record's timestamp to `published`, for the documents the ingest commit
    `raw_snapshot` added that curate kept (those the manifest published at `published` first contains)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipelines import lake

    if raw_snapshot is None:
        return []
    catalog = lake.open_catalog(cfg.lake)
    raw = catalog.load_table((cfg.lake.namespace, "raw_docs"))
    snap = raw.snapshot_by_id(raw_snapshot)
    run_id = (snap.summary.additional_properties if snap and snap.summary else {}).get(keys.RUN_ID)
    if run_id is None:
        return []
    rows = raw.scan(row_filter=f"run_id == '{run_id}'", selected_fields=("doc_id", "metadata")).to_arrow()
    stamps: dict[str, float] = {}
    for doc_id, meta in zip(rows.column("doc_id").to_pylist(), rows.column("metadata").to_pylist(), strict=True):
        ts = (json.loads(meta).get("_kafka") or {}).get("timestamp") if meta and '"_kafka"' in meta else None
        if ts is not None:
            stamps[doc_id] = ts / 1000.0
    if not stamps:
        return []
    decisions = catalog.load_table((cfg.lake.namespace, "doc_decisions"))
    kept = decisions.scan(row_filter="decision == 'kept'", selected_fields=("doc_id",)).to_arrow()
    ids = kept.filter(pc.is_in(kept.column("doc_id"), value_set=pa.array(list(stamps))))
    return [round(published - stamps[d], 3) for d in ids.column("doc_id").to_pylist()]


def run_cycle(cfg: Config, spark: SparkSession, number: int, *, everything: bool) -> CycleReport:
    """Ingest, then curate, tokenize and shard when ingest committed anything, or when `everything` and
    raw_docs holds a snapshot (a run's first cycle catches up on what an interrupted run left)."""
    from pipelines.stages import run_pipeline, run_stage

    started = time.time()
    ingest = run_stage("ingest", cfg, spark)
    reports: list[StageReport] = [ingest]
    read = int(ingest.counts.get("records_read", 0))
    if read or (everything and ingest.snapshots.get("raw_docs") is not None):
        reports += run_pipeline(cfg, spark, DOWNSTREAM)
    published = time.time()
    shard = next((r for r in reports if r.stage == "shard"), None)
    report = CycleReport(cycle=number, started=started, seconds=round(published - started, 3), records_read=read,
                         stages=[r.stage for r in reports])
    if shard is not None:
        report.manifest = shard.outputs.get("manifest")
        report.published = published
        if read:
            report.freshness = published_freshness(cfg, ingest.snapshots.get("raw_docs"), published)
    return report


def write_follow_metrics(cfg: Config, cycles: list[CycleReport]) -> Path:
    """`<metrics>/follow.json`: every cycle's summary and the freshness over all of them."""
    from pipelines.stages import metrics_path

    path = metrics_path(cfg, "follow")
    path.parent.mkdir(parents=True, exist_ok=True)
    every = [f for c in cycles for f in c.freshness]
    doc = {"cycles": [c.summary() for c in cycles], **freshness_stats(every)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def run_follow(cfg: Config, spark: SparkSession | None = None, *, flag: StopFlag | None = None,
               on_cycle: Callable[[CycleReport], None] | None = None) -> list[CycleReport]:
    """Run cycles until a signal (see the module docstring) or `follow.max_cycles`; returns their reports.
    Raises CycleAbandoned on a second signal during a cycle."""
    if spark is None:
        from pipelines.lake.spark import build_session

        spark = build_session(cfg.spark)
    flag = flag or StopFlag()
    fc = cfg.follow
    cycles: list[CycleReport] = []
    last: float | None = None
    with flag.installed():
        while not flag.stopping.is_set():
            waiting = None
            while True:
                now = time.monotonic()
                if due(now, last, fc.interval, waiting, fc.min_records) or flag.stopping.is_set():
                    break
                assert last is not None  # the first cycle is due at once
                flag.stopping.wait(min(fc.poll, fc.interval - (now - last)))
                waiting = waiting_records(cfg) if fc.min_records else None
            if flag.stopping.is_set():
                break
            last = time.monotonic()
            flag.in_cycle = True
            try:
                report = run_cycle(cfg, spark, len(cycles) + 1, everything=not cycles)
            finally:
                flag.in_cycle = False
            cycles.append(report)
            write_follow_metrics(cfg, cycles)
            stats = freshness_stats(report.freshness)
            log.info("follow: cycle %d read %d records in %.1fs (%s); freshness p50 %s s, p95 %s s",
                     report.cycle, report.records_read, report.seconds, "+".join(report.stages),
                     stats["freshness_p50_s"], stats["freshness_p95_s"])
            if on_cycle is not None:
                on_cycle(report)
            if fc.max_cycles is not None and len(cycles) >= fc.max_cycles:
                break
    return cycles
