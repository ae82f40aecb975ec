"""A corpus arriving in increments: the incremental stages against a full rebuild at the same point.

    .venv/bin/python -m benchmarks.incremental [--docs 2900] [--variants 0] [--increments 20] [--base 0.8]
        [--full-at 1,10,20] [--sources local,kafka] [--no-cold] [--keep-lakes] [--profile]

Data: the first --docs records of the bundled sample (data/sample/kjv.jsonl then jargon.jsonl: real text,
with its natural and planted near duplicates); --variants N appends N deterministic variants of each record
(every third word replaced by another word of the record, chosen by position: new
shingles, the same vocabulary; a new id) for a larger corpus, printed with its size.
For each source in --sources, on its own lake and one Spark session: a base of --base of the records
arrives (a JSONL file in a local folder, or records produced to a topic of a Tansu broker started here, the
last one unbatched) and is built once (ingest, curate, train-tokenizer, tokenize, shard); then each of
--increments adds an equal share of the rest and `ingest, curate, tokenize, shard` run again on the same lake,
each stage deciding itself what to do (pipelines/stages/snapshots.py). Anchors, after the increments in --full-at:
a fresh lake built from the whole input so far (the folder, or the topic from offset 0) with the same
tokenizer file. After the last increment the incremental lake itself is also rebuilt in full (curate with
`curate.dedup.incremental=false`, then tokenize and shard, which rebuild because their input was rewritten).
Warm and cold: everything above runs in this one process and one Spark session, after the base run, so the
increments and the rebuilds are timed warm (JVM, Python workers and imports already started by the base; an
increment only pays the first use of code the base did not run). Then, unless --no-cold, one more increment of
the same size (new variants of the first records) is run as a daily run is, by `tokenmill run` in a fresh
process: its wall time (interpreter, imports, JVM and Spark session start, every stage's first-use costs) and
its stages' own seconds are printed beside the warm increments' median.

Printed per increment: wall seconds, per stage seconds and Spark jobs, docs tokenized, shards written, shards
in the manifest, and the fresh-lake rebuild's seconds and the ratio; then the targets: last/first increment
time (<= 1.3; and, since one increment slowed by other work on the machine moves that ratio, the median of
the last 3 over the median of the first 3 and the min/median/max of all increments beside it, plus the Spark
jobs per increment), increment / full rebuild at the same point (<= 0.10), and whether the final manifest's
documents, as a multiset of token sequences, equal the full rebuild's: the in-place rebuild (same arrivals:
the target, see docs/dedup.md "Arrival first") and the fresh lake (one arrival for everything, so a later,
better duplicate wins there). Each figure is one run on whatever machine runs it: say how loaded it was.
--profile turns on Spark's event log and prints, for the first and the last increment, each stage's jobs and
their seconds per call site (benchmarks.dedup_spark.event_log_profile).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

from pipelines.config import Config, load_config  # noqa: E402
from pipelines.stages import run_stage  # noqa: E402

STAGES = ("ingest", "curate", "tokenize", "shard")


def sample_records(n: int, variants: int = 0) -> list[dict[str, Any]]:
    """The first `n` clean JSONL records of the sample, then `variants` rotated copies of each (new ids)."""
    out: list[dict[str, Any]] = []
    for name in ("kjv.jsonl", "jargon.jsonl"):
        for line in (ROOT / "data" / "sample" / name).read_bytes().splitlines():
            if len(out) == n:
                break
            try:  # the sample plants malformed records for the quarantine; the benchmark takes clean ones
                rec = json.loads(line.decode("utf-8"))
                out.append({"id": str(rec["id"]), "text": str(rec["text"])})
            except (UnicodeDecodeError, ValueError, KeyError, TypeError):
                continue
    if len(out) < n:
        raise SystemExit(f"the sample holds only {len(out)} JSONL records; use --docs {len(out)} or fewer")
    extra = []
    for v in range(1, variants + 1):
        for rec in out:  # every third word swapped for another of the record's words: a new document to dedup
            words = rec["text"].split(" ")
            extra.append({"id": f"{rec['id']}~v{v}", "text": " ".join(
                words[(j * 7 + v) % len(words)] if (j + v) % 3 == 0 else w for j, w in enumerate(words))})
    # interleave, so the base and every increment hold originals and variants alike
    return [r for group in zip(*([out] + [extra[i * n:(i + 1) * n] for i in range(variants)]), strict=True)
            for r in group]


class LocalFeed:
    """Increments as JSONL files in one folder."""

    def __init__(self, work: Path) -> None:
        self.folder = work / "in-local"
        self.folder.mkdir()
        self.parts = 0

    def source(self) -> str:
        return f"[{{type: local, path: '{self.folder}'}}]"

    def add(self, records: list[dict[str, Any]]) -> None:
        path = self.folder / f"part-{self.parts:03d}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self.parts += 1

    def close(self) -> None:
        pass


class KafkaFeed:
    """Increments as records produced to one topic of a Tansu broker started here (tests' broker)."""

    def __init__(self, work: Path) -> None:
        from kafka import KafkaProducer
        from kafka.admin import KafkaAdminClient, NewTopic

        from benchmarks.follow import start_broker

        self.broker, self.bootstrap = start_broker(work)
        self.topic = "bench-incremental"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        admin.create_topics([NewTopic(self.topic, num_partitions=1, replication_factor=1)])
        admin.close()
        self.producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)

    def source(self) -> str:
        return (f"[{{type: kafka, bootstrap: '{self.bootstrap}', topics: [{self.topic}], name: {self.topic}, "
                f"poll_timeout_ms: 5000}}]")

    def add(self, records: list[dict[str, Any]]) -> None:
        # Tansu's high watermark is the last batch's base offset + 1: the final record goes alone
        for r in records[:-1]:
            self.producer.send(self.topic, json.dumps(r, ensure_ascii=False).encode(), partition=0)
        self.producer.flush()
        self.producer.send(self.topic, json.dumps(records[-1], ensure_ascii=False).encode(), partition=0)
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()
        self.broker.terminate()
        self.broker.wait(timeout=30)


def overrides(root: Path, source: str, tokenizer: Path, *extra: str) -> list[str]:
    """The `--set` assignments of a lake's config (on top of every default)."""
    return [f"lake.root={root}", f"lake.metrics_dir={root}/metrics", f"sources={source}",
            "spark.master=local[2]", f"tokenize.tokenizer={tokenizer}", "tokenize.train.vocab_size=4096",
            "shard.target_bytes=1048576", *extra]


def config(root: Path, source: str, tokenizer: Path, *extra: str) -> Config:
    return load_config(None, overrides(root, source, tokenizer, *extra))


def cold_increment(root: Path, source: str, tokenizer: Path, work: Path) -> tuple[float, dict[str, float]]:
    """One `tokenmill run` of the lake at `root` in a fresh process, as a daily run is: wall seconds of the
    whole process (interpreter, imports, JVM and Spark session start, the stages) and each stage's own seconds
    (its metrics file)."""
    empty = work / "cold.yaml"
    empty.write_text("{}\n")
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--config", str(empty)]
    for assignment in overrides(root, source, tokenizer):
        cmd += ["--set", assignment]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"tokenmill run failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    stages = {name: float(json.loads((root / "metrics" / f"{name}.json").read_text())["seconds"])
              for name in STAGES}
    return wall, stages


@dataclass
class Timed:
    seconds: float = 0.0
    reports: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, tuple[float, int]] = field(default_factory=dict)  # seconds, Spark jobs

    def profile(self) -> str:
        return " ".join(f"{n[:3]} {s:5.1f}s/{j:2d}j" for n, (s, j) in self.stages.items())


def run_stages(cfg: Config, spark: Any, stages: tuple[str, ...], tag: str) -> Timed:
    """Run `stages` in order; wall seconds in total and per stage, with the Spark jobs each started."""
    sc = spark.sparkContext
    out = Timed()
    for name in stages:
        group = f"{tag}/{name}"
        sc.setJobGroup(group, group)
        start = time.perf_counter()
        out.reports[name] = run_stage(name, cfg, spark)
        seconds = time.perf_counter() - start
        out.stages[name] = (seconds, len(sc.statusTracker().getJobIdsForGroup(group)))
        out.seconds += seconds
    return out


def flatness(times: list[float]) -> str:
    """Figures of how increment times change over the run that one outlier cannot move: the median of the
    last three over the median of the first three, and the min/median/max of all."""
    head, tail = statistics.median(times[:3]), statistics.median(times[-3:])
    return (f"median of the last 3 / median of the first 3: {tail / head:.2f}; all {len(times)} increments: min "
            f"{min(times):.1f} s, median {statistics.median(times):.1f} s, max {max(times):.1f} s")


def token_multiset(manifest_uri: str) -> collections.Counter[str]:
    """sha256 of each document's token bytes, counted, read through each shard's index."""
    import numpy as np

    path = Path(manifest_uri.removeprefix("file://"))
    manifest = json.loads(path.read_text())
    itemsize = 2 if manifest["token_dtype"] == "uint16" else 4
    counts: collections.Counter[str] = collections.Counter()
    for s in manifest["shards"]:
        blob = (path.parent / s["path"]).read_bytes()
        for row in np.load(path.parent / s["index"], allow_pickle=False):
            start = int(row["tokens_offset"])
            counts[hashlib.sha256(blob[start:start + itemsize * int(row["n_tokens"])]).hexdigest()] += 1
    return counts


def compare(label: str, ours: collections.Counter[str], other: collections.Counter[str]) -> None:
    same = ours == other
    print(f"final manifest vs {label}: {ours.total()} vs {other.total()} documents; token sequences identical "
          f"as a multiset: {same}" + ("" if same else f" ({(ours - other).total()} only incremental, "
                                                     f"{(other - ours).total()} only the rebuild)"))


def bench_source(kind: str, records: list[dict[str, Any]], args: argparse.Namespace, work: Path, spark: Any) -> None:
    n_base = int(len(records) * args.base)
    step = (len(records) - n_base) // args.increments
    full_at = {int(x) for x in args.full_at.split(",") if x}
    feed = LocalFeed(work) if kind == "local" else KafkaFeed(work)
    tokenizer = work / f"tokenizer-{kind}.json"
    try:
        cfg = config(work / f"lake-{kind}", feed.source(), tokenizer)
        feed.add(records[:n_base])
        base = run_stages(cfg, spark, ("ingest", "curate", "train-tokenizer", "tokenize", "shard"), f"{kind}-base")
        print(f"\n[{kind}] base {n_base} docs: {base.seconds:.1f} s ({base.profile()}); {args.increments} "
              f"increments of {step} docs; fresh-lake rebuilds after increments {sorted(full_at)}")
        print(f"{'inc':>3} {'docs':>6} {'incr s':>7} {'tokenized':>9} {'shards+':>7} {'shards':>6} {'full s':>7} "
              f"{'incr/full':>9}  per stage (seconds/Spark jobs)")
        rows: list[dict[str, Any]] = []
        fresh_manifest = None
        for i in range(1, args.increments + 1):
            lo = n_base + (i - 1) * step
            hi = len(records) if i == args.increments else lo + step
            feed.add(records[lo:hi])
            inc = run_stages(cfg, spark, STAGES, f"{kind}-{i}")
            row = {"inc": i, "seconds": inc.seconds, "manifest": inc.reports["shard"].outputs["manifest"],
                   "jobs": sum(j for _, j in inc.stages.values())}
            full = ""
            if i in full_at:
                fresh = run_stages(config(work / f"fresh-{kind}-{i}", feed.source(), tokenizer), spark, STAGES,
                                   f"{kind}-fresh-{i}")
                row["full_seconds"], row["full_profile"] = fresh.seconds, fresh.profile()
                full = f"{fresh.seconds:7.1f} {inc.seconds / fresh.seconds:9.2f}"
                if i == args.increments:
                    fresh_manifest = fresh.reports["shard"].outputs["manifest"]
            rows.append(row)
            print(f"{i:3d} {hi:6d} {inc.seconds:7.1f} {inc.reports['tokenize'].counts['docs']:9d} "
                  f"{inc.reports['shard'].counts['shards_written']:7d} {inc.reports['shard'].counts['shards']:6d} "
                  f"{full:>17}  {inc.profile()}", flush=True)
        times = [r["seconds"] for r in rows]
        print(f"[{kind}] last/first increment time: {times[-1] / times[0]:.2f} (target <= 1.3); " + flatness(times))
        jobs = [r["jobs"] for r in rows]
        print(f"[{kind}] Spark jobs per increment (ingest+curate+tokenize+shard): first {jobs[0]}, last {jobs[-1]}, "
              f"min {min(jobs)}, max {max(jobs)}")
        for r in rows:
            if "full_seconds" in r:
                print(f"[{kind}] increment {r['inc']}: {r['seconds']:.1f} s vs fresh-lake rebuild "
                      f"{r['full_seconds']:.1f} s ({r['full_profile']}) = {r['seconds'] / r['full_seconds']:.2f} "
                      "(target <= 0.10)")
        ours = token_multiset(rows[-1]["manifest"])
        inplace = run_stages(config(work / f"lake-{kind}", feed.source(), tokenizer, "curate.dedup.incremental=false"),
                             spark, ("curate", "tokenize", "shard"), f"{kind}-inplace")
        print(f"[{kind}] in-place full rebuild (curate, tokenize, shard): {inplace.seconds:.1f} s "
              f"({inplace.profile()})")
        compare("an in-place full rebuild (same arrivals)", ours,
                token_multiset(inplace.reports["shard"].outputs["manifest"]))
        if fresh_manifest is not None:
            compare("a fresh-lake rebuild (one arrival)", ours, token_multiset(fresh_manifest))
        if args.cold:
            cold = [r for r in sample_records(args.docs, args.variants + 1)
                    if r["id"].endswith(f"~v{args.variants + 1}")][:step]
            feed.add(cold)
            wall, stages = cold_increment(work / f"lake-{kind}", feed.source(), tokenizer, work)
            work_s = sum(stages.values())
            print(f"[{kind}] cold increment ({len(cold)} new docs, a fresh `tokenmill run` process): {wall:.1f} s "
                  f"wall; its stages {work_s:.1f} s (" + " ".join(f"{n[:3]} {v:.1f}s" for n, v in stages.items())
                  + f"), the rest {wall - work_s:.1f} s (interpreter, imports, JVM and Spark session start); warm "
                  f"increments in this process: median {statistics.median(times):.1f} s")
    finally:
        feed.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2900, help="sample records to start from (the sample holds 2,938)")
    ap.add_argument("--variants", type=int, default=0, help="deterministic variants per sample record")
    ap.add_argument("--increments", type=int, default=20)
    ap.add_argument("--base", type=float, default=0.8)
    ap.add_argument("--full-at", default="1,10,20", help="increments after which a fresh-lake rebuild is timed")
    ap.add_argument("--sources", default="local,kafka", help="comma-separated: local, kafka")
    ap.add_argument("--no-cold", dest="cold", action="store_false",
                    help="skip the last increment run by a fresh `tokenmill run` process")
    ap.add_argument("--keep-lakes", action="store_true", help="keep the work folder (lakes, inputs) and print it")
    ap.add_argument("--profile", action="store_true",
                    help="Spark's event log: the last increment's jobs per stage and call site")
    args = ap.parse_args()
    from pipelines.config import SparkConfig
    from pipelines.lake.spark import build_session

    records = sample_records(args.docs, args.variants)
    size = sum(len(r["text"].encode()) for r in records)
    print(f"corpus: {len(records)} docs, {size / 1e6:.1f} MB of text ({args.docs} sample records, "
          f"{args.variants} variants each); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    work = Path(tempfile.mkdtemp(prefix="tokenmill-incremental-"))
    conf = {"spark.ui.showConsoleProgress": "false"}
    if args.profile:
        (work / "events").mkdir()
        conf |= {"spark.eventLog.enabled": "true", "spark.eventLog.compress": "false",
                 "spark.eventLog.dir": (work / "events").as_uri()}
    spark = build_session(SparkConfig(master="local[2]", app_name="bench-incremental", conf=conf))
    try:
        for kind in args.sources.split(","):
            bench_source(kind.strip(), records, args, work, spark)
    finally:
        spark.stop()
        if args.profile:
            from benchmarks.dedup_spark import event_log_profile

            for kind in args.sources.split(","):
                for inc in sorted({1, args.increments}):  # the first increment of the process, and the last
                    for stage in STAGES:
                        group = f"{kind.strip()}-{inc}/{stage}"
                        print(f"[{group}] " + event_log_profile(str(work / "events"), top=40, group=group))
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        if args.keep_lakes:
            print(f"lakes kept under {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
