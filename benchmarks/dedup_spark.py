"""Dedup on Spark `local[N]` against the local (no Spark) engine, side by side in one run: exact then
MinHash-LSH near dedup the curate stage's way (signatures in a parallel pass, then `dedup.spark.duplicates`:
the driver plan for a small input, the one-task plan up to single_task_max_bytes, the distributed plan
beyond) vs `dedup.local.duplicates_local`; wall time and the plan taken, and for the corpus the peak RSS of
the driver's own Python process, of the JVM, of the largest Python worker and of the whole process tree.

    python -m benchmarks.dedup_spark [--cores 2] [--gb 1] [--single-task-max-bytes N] [--driver-max-bytes N]
    python -m benchmarks.dedup_spark --sample [--no-distributed]   # the bundled sample, side by side
    python -m benchmarks.dedup_spark --sample --profile   # and where Spark's time goes, job by job

`--profile` turns on Spark's event log (`spark.eventLog.enabled`) in a temporary folder and, after the run,
prints the jobs, stages and tasks the Spark path ran and the wall time of its jobs grouped by the line of
code that started them (the event log's `callSite.short`), slowest first.

The corpus is the one `python -m benchmarks.dedup --e2e-gb 1` generates under out/dedup-bench/ (real text
from Debian's text packages with word substitutions and planted near copies).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]


class TreeRss:
    """Samples RSS every `every` seconds and keeps the peaks: `peak` of this process and all its descendants
    summed, `driver` of this process alone (the Spark driver's Python), `jvm` of the Java descendants, and
    `worker` of the largest other descendant (a Python worker: the one-task plan runs in one)."""

    def __init__(self, every: float = 0.2) -> None:
        self.peak = self.driver = self.jvm = self.worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = jvm = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    rss, java = p.memory_info().rss, p is not me and "java" in p.name()
                except psutil.Error:
                    continue
                total += rss
                if p is me:
                    self.driver = max(self.driver, rss)
                elif java:
                    jvm += rss
                else:
                    self.worker = max(self.worker, rss)
            self.peak, self.jvm = max(self.peak, total), max(self.jvm, jvm)
            self._stop.wait(every)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def sample_table() -> pa.Table:
    """The valid records of data/sample/ (doc_id, text, quality_score, n_chars, exact_hash)."""
    import gzip
    import json

    import numpy as np
    import pyarrow.parquet as pq

    from dedup.exact import text_hash128_hex

    ids, texts = [], []
    for name in ("kjv.jsonl", "jargon.jsonl", "fortunes.jsonl.gz"):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(ROOT / "data" / "sample" / name, "rt", encoding="utf-8", errors="replace") as fh:  # type: ignore[operator]
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("id"), str) and isinstance(rec.get("text"), str):
                    ids.append(rec["id"])
                    texts.append(rec["text"])
    deb = pq.read_table(ROOT / "data" / "sample" / "debian-reference.parquet", columns=["id", "text"])
    ids += deb["id"].to_pylist()
    texts += deb["text"].to_pylist()
    keep = sorted({d: k for k, d in enumerate(ids)}.values())  # one record per id
    table = pa.table({"doc_id": [ids[k] for k in keep], "text": [texts[k] for k in keep]})
    rng = np.random.default_rng(0)
    return table.append_column("quality_score", pa.array(rng.random(table.num_rows))).append_column(
        "n_chars", pa.array([len(t) for t in table["text"].to_pylist()], pa.int64())).append_column(
        "exact_hash", text_hash128_hex(table["text"]))


def event_log_profile(folder: str, top: int = 12, group: str | None = None) -> str:
    """Jobs, stages and tasks in Spark event logs under `folder`, with job wall time per call site (and job
    description, when set); only the jobs of job group `group` (SparkContext.setJobGroup) when given (stages and
    tasks are then not counted)."""
    import collections
    import json

    jobs: dict[int, list] = {}  # type: ignore[type-arg]
    stages = tasks = 0
    for path in sorted(p for p in Path(folder).rglob("events_*") if p.is_file()):
        with path.open() as fh:
            for line in fh:
                ev = json.loads(line)
                kind = ev["Event"]
                if kind == "SparkListenerJobStart":
                    if group is not None and ev.get("Properties", {}).get("spark.jobGroup.id") != group:
                        continue
                    stage_names = [st.get("Stage Name", "?") for st in ev.get("Stage Infos", [])]
                    props = ev.get("Properties", {})
                    site = props.get("callSite.short") or (stage_names[-1] if stage_names else "?")
                    if props.get("spark.job.description"):  # e.g. "persisted step curated" (dedup.steps.spark)
                        site = f"{props['spark.job.description']}: {site}"
                    jobs[ev["Job ID"]] = [ev["Submission Time"], ev["Submission Time"], site]
                elif kind == "SparkListenerJobEnd" and ev["Job ID"] in jobs:
                    jobs[ev["Job ID"]][1] = ev["Completion Time"]
                elif kind == "SparkListenerStageCompleted":
                    stages += 1
                elif kind == "SparkListenerTaskEnd":
                    tasks += 1
    sites: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for start, end, site in jobs.values():
        sites[site][0] += 1
        sites[site][1] += (end - start) / 1000
    counted = "" if group is not None else f"{stages} stages, {tasks} tasks, "
    lines = [f"event log: {len(jobs)} jobs, {counted}{sum(s[1] for s in sites.values()):.2f} s inside jobs"]
    for site, (n, secs) in sorted(sites.items(), key=lambda kv: -kv[1][1])[:top]:
        lines.append(f"  {int(n):4d} jobs {secs:7.2f} s  {site}")
    return "\n".join(lines)


def _spark_session(cores: int, events: str | None):  # type: ignore[no-untyped-def]
    from pipelines.config import SparkConfig
    from pipelines.lake.spark import build_session

    conf = {"spark.sql.shuffle.partitions": str(4 * cores), "spark.ui.showConsoleProgress": "false"}
    if events:
        conf |= {"spark.eventLog.enabled": "true", "spark.eventLog.compress": "false",
                 "spark.eventLog.dir": Path(events).as_uri()}
    return build_session(SparkConfig(master=f"local[{cores}]", app_name="dedup-bench", conf=conf))


def _text_size(rows: pa.Table) -> dict[str, int]:
    """Inside a task: a written file's documents and text bytes (curate's `_passed_size`, without filters)."""
    import pyarrow.compute as pc

    return {"docs": rows.num_rows, "text_bytes": int(pc.sum(pc.binary_length(rows.column("text"))).as_py() or 0)}


def _curate_dedup(docs, cfg, checkpoint_dir: str | None = None) -> tuple[int, dict[str, int]]:  # type: ignore[no-untyped-def]
    """What the curate stage runs after its filters, from text: exact hashes (unless `docs` has them) and
    signatures in one parallel pass (the filter pass computes both), written as the persisted `curated` step
    (under `checkpoint_dir`, else a temporary folder) and read back, then dedup.spark.duplicates with the same
    persisted steps (the driver plan or the one task reads the step's files itself, as in curate)."""
    from pyspark.sql.types import ArrayType, BinaryType, LongType, StringType, StructField, StructType

    from dedup.exact import text_hash128_hex
    from dedup.local import DUPLICATE_SCHEMA, signature_columns
    from dedup.onetask.spark import STEP as ONE_TASK_STEP
    from dedup.steps.spark import Steps
    from dedup.threads import thread_budget

    hashed = "exact_hash" in docs.columns

    def signed(batches):  # type: ignore[no-untyped-def]
        with thread_budget():  # as curate's filter pass: the task's share of the cores
            for b in batches:
                sig, keys = signature_columns(b.column("text"), cfg)
                extra = [] if hashed else [text_hash128_hex(b.column("text"))]
                yield pa.RecordBatch.from_arrays([*b.columns, *extra, sig, keys],
                                                 names=[*b.schema.names, *(["exact_hash"] * (not hashed)),
                                                        "signature", "band_keys"])

    from dedup.spark import duplicates

    added = [*([] if hashed else [StructField("exact_hash", StringType())]), StructField("signature", BinaryType()),
             StructField("band_keys", ArrayType(LongType()))]
    with tempfile.TemporaryDirectory(dir=checkpoint_dir) as folder:
        steps = Steps(docs.sparkSession, folder)
        curated = steps.materialize("curated", lambda: docs, transform=signed,  # one pass, as curate's filters
                                    schema=StructType([*docs.schema.fields, *added]), file_notes=_text_size)
        notes = steps.notes("curated")  # dedup's input size counted on each file, as curate does
        stats: dict[str, int] = {}
        driver_rows: list[pa.Table] = []
        rows = duplicates(curated, cfg=cfg, checkpoint_dir=checkpoint_dir, stats=stats, steps=steps,
                          size=(notes["docs"], notes["text_bytes"]), reader=steps.reader("curated"),
                          driver_rows=driver_rows)
        # the removed rows on the driver as Arrow, as the local engine gives them: the driver plan's own table
        # (curate decides with it, no job); the one task's rows, a persisted step, read from its files with
        # pyarrow (as the driver plan reads its columns); else collected as Arrow (a count would be a job too)
        if driver_rows:
            removed = driver_rows[0].num_rows
        elif steps.done(ONE_TASK_STEP):
            removed = steps.reader(ONE_TASK_STEP)(DUPLICATE_SCHEMA.names, None).read_all().num_rows
            # the one task's cores and where its time went
            stats.update({f"one_task_{k}": v for k, v in steps.notes(ONE_TASK_STEP).items() if k not in stats})
        else:
            assert rows is not None  # None only when the driver plan gave its rows to driver_rows
            removed = rows.toArrow().num_rows
    return removed, stats


def sample_side_by_side(cores: int, profile: bool = False, repeats: int = 3, distributed: bool = True) -> None:
    """Exact then near dedup of the sample, the curate stage's way, through dedup.local and dedup.spark in one
    run (from text on both sides); medians of `repeats`, then the same with the one-task path off."""
    import statistics

    from dedup.config import DedupConfig
    from dedup.local import duplicates_local

    table = sample_table()
    events = tempfile.mkdtemp(prefix="dedup-events-") if profile else None
    spark = _spark_session(cores, events)
    docs = spark.createDataFrame(table.to_pandas()).cache()
    docs.count()  # the input in Spark's memory, as the curate stage has it after its filter pass
    start_workers(spark, cores)
    plans = {"local": DedupConfig(), "spark": DedupConfig(), "spark one-task": DedupConfig(driver_max_bytes=0),
             "spark distributed": DedupConfig(single_task_max_bytes=0)}
    if not distributed:
        del plans["spark distributed"]
    times: dict[str, list[float]] = {k: [] for k in plans}
    removed: dict[str, int] = {}
    taken: dict[str, str] = {}
    for _ in range(repeats):
        for name, cfg in plans.items():
            t = time.perf_counter()
            if name == "local":
                removed[name] = duplicates_local(table, cfg=cfg).num_rows
            else:
                removed[name], stats = _curate_dedup(docs, cfg)
                taken[name] = plan_taken(stats)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"sample: {table.num_rows:,} docs, {sum(map(len, table['text'].to_pylist())) / 1e6:.1f} MB; removed "
          + ", ".join(f"{k} {v:,}" for k, v in removed.items()) + f"; median of {repeats}: "
          + ", ".join(f"{k} {v:.2f}s" for k, v in med.items()))
    print("each pass: " + "; ".join(f"{k} " + " ".join(f"{x:.2f}" for x in v) for k, v in times.items()))
    print(f"spark local[{cores}] / local = " + ", ".join(
        f"{med[k] / med['local']:.2f} ({k}: {taken[k]} plan)" for k in plans if k != "local"))
    spark.stop()
    if events:
        print("whole run (input caching and every pass of both Spark plans):")
        print(event_log_profile(events))
        shutil.rmtree(events, ignore_errors=True)


def start_workers(spark, cores: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds of the session's first Python job: `cores` tasks that wait 0.2 s each, so that they run at once
    and each starts its Python worker (Spark reuses them for later tasks). A curate in `tokenmill run` finds
    them started by ingest; the benchmark starts them before timing either side and prints what it took."""
    def wait(batches):  # type: ignore[no-untyped-def]
        time.sleep(0.2)
        yield from batches

    t = time.perf_counter()
    spark.range(cores, numPartitions=cores).mapInArrow(wait, "id long").collect()
    return time.perf_counter() - t


def plan_taken(stats: dict[str, int]) -> str:
    """The plan dedup.spark.duplicates took, from its stats."""
    if stats.get("dedup_on_driver"):
        return "driver"
    return "one-task" if stats.get("dedup_one_task") else "distributed"


def corpus_side_by_side(path: Path, cores: int, gb: float, budgets: dict[str, int], profile: bool = False) -> None:
    """The generated corpus, once each: the Spark curate path, then the local engine (dedup.local.
    duplicates_local, all in memory, in this process: run second so that the driver's own RSS during the
    Spark run is not what the local engine left), wall time and peak RSS for each; `budgets`
    (driver_max_bytes, single_task_max_bytes) override the default plan choice."""
    import pyarrow.parquet as pq

    from dedup.config import DedupConfig
    from dedup.exact import text_hash128_hex
    from dedup.local import duplicates_local
    from dedup.spark import driver_plan_bytes

    cfg = DedupConfig()
    spark_cfg = cfg.model_copy(update=budgets)
    from pyspark.sql.pandas.types import from_arrow_schema

    events = tempfile.mkdtemp(prefix="dedup-events-") if profile else None
    spark = _spark_session(cores, events)
    warm_s = start_workers(spark, cores)
    with tempfile.TemporaryDirectory() as tmp, TreeRss() as rss:
        t = time.perf_counter()
        # the schema from the file's footer, as the local engine gets it (Spark would run a job to infer it)
        schema = from_arrow_schema(pq.read_schema(path))
        df = spark.read.schema(schema).parquet(str(path)).select("doc_id", "text", "quality_score", "n_chars")
        n_spark, stats = _curate_dedup(df, spark_cfg, tmp)
        spark_s = time.perf_counter() - t
    spark.stop()
    with TreeRss() as local_rss:
        t = time.perf_counter()
        table = pq.read_table(path, columns=["doc_id", "text", "quality_score", "n_chars"])
        table = table.append_column("exact_hash", text_hash128_hex(table["text"]))
        n_docs, n_local = table.num_rows, duplicates_local(table, cfg=cfg).num_rows
        local_s = time.perf_counter() - t
    lean = driver_plan_bytes(cfg, n_docs, 0, texts=False)
    print(f"{gb:g} GB corpus, {n_docs:,} docs ({lean / 1e6:.0f} MB of dedup columns by the plan's estimate): "
          f"local {local_s:.1f} s (peak RSS {local_rss.driver / 1e9:.2f} GB), {n_local:,} removed; "
          f"spark local[{cores}] {spark_s:.1f} s, {n_spark:,} removed, {plan_taken(stats)} plan; "
          f"peak RSS: driver Python {rss.driver / 1e6:,.0f} MB, JVM {rss.jvm / 1e6:,.0f} MB, largest Python "
          f"worker {rss.worker / 1e6:,.0f} MB ({rss.worker / lean:.1f}x the estimate), tree {rss.peak / 1e9:.2f} GB; "
          f"spark / local = {spark_s / local_s:.2f}")
    print(f"before the Spark run, the session's first Python job (starting {cores} Python workers) took {warm_s:.1f} s; "
          f"counted in, spark / local = {(warm_s + spark_s) / local_s:.2f}")
    if stats.get("one_task_cores"):
        print(f"the one task: {stats['one_task_cores']} cores, read its columns {stats['one_task_read_ms'] / 1000:.1f} s, "
              f"deduplicated {stats['one_task_dedup_ms'] / 1000:.1f} s (of which reading the candidates' texts "
              f"{stats['one_task_texts_ms'] / 1000:.1f} s)")
    if events:
        print(event_log_profile(events))
        shutil.rmtree(events, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--sample", action="store_true", help="the bundled sample, Spark and local side by side")
    parser.add_argument("--profile", action="store_true", help="Spark's event log: jobs and their time per call site")
    parser.add_argument("--repeats", type=int, default=3, help="--sample: passes of each path (median)")
    parser.add_argument("--no-distributed", action="store_true", help="--sample: leave the distributed plan out")
    parser.add_argument("--single-task-max-bytes", type=int, default=None,
                        help="the corpus: override curate.dedup.single_task_max_bytes (0: the distributed plan)")
    parser.add_argument("--driver-max-bytes", type=int, default=None,
                        help="the corpus: override curate.dedup.driver_max_bytes (0: no driver plan)")
    args = parser.parse_args()
    if args.sample:
        sample_side_by_side(args.cores, args.profile, args.repeats, not args.no_distributed)
        return
    path = ROOT / "out" / "dedup-bench" / f"corpus-{args.gb:g}gb.parquet"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `python -m benchmarks.dedup --e2e-gb {args.gb:g}` first")
    budgets = {k: v for k, v in (("single_task_max_bytes", args.single_task_max_bytes),
                                 ("driver_max_bytes", args.driver_max_bytes)) if v is not None}
    corpus_side_by_side(path, args.cores, args.gb, budgets, args.profile)


if __name__ == "__main__":
    main()
