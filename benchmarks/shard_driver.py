"""Driver memory of the shard stage's plan at two corpus sizes: the distributed plan vs the previous planner.

Anchor: the planner the stage had before bucket groups (`collect_plan`, kept here as it was, with its 1,024
hash-prefix buckets): every document's order key and sample size collected to the driver (~16 B
per document) and packed there. Ours: the stage's `plan_shards` (bucket totals to the driver, groups packed on
the executors, a few numbers per shard merged on the driver). Both plan the same tokens table (small documents,
so per-document costs dominate) in a fresh driver process each; printed per size and planner: the peak of the
Python driver's allocations while it plans (tracemalloc, numpy included), its peak RSS (VmHWM) above its RSS
once Spark is up and the tokens table is open (coarser: the allocator reuses freed memory), shards planned,
wall seconds, and the 1x / 0.25x ratios. `--full` runs the whole stage (plan, write, publish) instead of the
plan alone. The JVM (driver and executors in one process under local[N]) is not counted.

    .venv/bin/python -m benchmarks.shard_driver --docs 2000000 --cores 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

INFO = {"token_dtype": "uint16", "eod_id": "0", "vocab_size": "32000", "tokenizer_sha256": "bench"}


def make_lake(root: Path, docs: int, cores: int, target: int) -> list[str]:
    """A lake whose tokens table holds `docs` short documents (16..112 uint16 tokens); returns the config
    overrides that open it."""
    from pipelines import lake
    from pipelines.config import load_config
    from schemas.tokens import TABLE

    sets = [f"lake.root={root}", f"spark.master=local[{cores}]", f"shard.target_bytes={target}"]
    cfg = load_config(None, sets)
    table = lake.ensure_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, TABLE)
    rng = np.random.default_rng(0)
    files = []
    for lo in range(0, docs, 250_000):
        n = min(250_000, docs - lo)
        lengths = rng.integers(16, 113, n)
        offsets = np.r_[0, np.cumsum(lengths * 2)].astype(np.int32)
        data = rng.integers(1, 32000, int(lengths.sum()), dtype=np.uint16).tobytes()
        rows = pa.table({
            "doc_id": pa.array([f"doc-{i:010d}" for i in range(lo, lo + n)]),
            "tokens": pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]),
            "n_tokens": pa.array(lengths.astype(np.int32)),
            "source": pa.array(["local:bench"] * n),
        })
        rows = rows.cast(lake.file_schema(table, TABLE.arrow_schema))
        files.append(lake.write_data_file(lake.data_dir(table), rows, prefix="b"))
    lake.commit_files(table, [f for f in files if f], lake.snapshot_summary(
        cfg, "tokenize", "bench", {f"tokenmill.{k}": v for k, v in INFO.items()}))
    return sets


def _bucket_summaries(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The previous planner's task: per bucket, keys and sizes as raw int64 bytes and the collided rows."""
    from sharding.write.dataset_plan import collision_mask

    pieces = [b for b in batches if b.num_rows]
    if not pieces:
        return
    t = pa.Table.from_batches(pieces)
    bucket = t.column("bucket").to_numpy()
    h, ch, nbytes = (t.column(c).to_numpy() for c in ("h", "ch", "nbytes"))
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], bucket.size]
    rows: dict[str, list[Any]] = {k: [] for k in ("bucket", "h", "nbytes", "coll_pos", "coll_doc_ids", "coll_ch")}
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        coll = np.flatnonzero(collision_mask(h[s:e]))
        rows["bucket"].append(int(bucket[s]))
        rows["h"].append(h[s:e].tobytes())
        rows["nbytes"].append(nbytes[s:e].tobytes())
        rows["coll_pos"].append(coll.astype(np.int64).tobytes())
        rows["coll_doc_ids"].append(t.column("doc_id").slice(s, e - s).take(pa.array(coll)).to_pylist())
        rows["coll_ch"].append(ch[s:e][coll].tobytes())
    yield pa.RecordBatch.from_pydict(rows, schema=pa.schema([
        ("bucket", pa.int32()), ("h", pa.binary()), ("nbytes", pa.binary()), ("coll_pos", pa.binary()),
        ("coll_doc_ids", pa.list_(pa.string())), ("coll_ch", pa.binary()),
    ]))


def collect_plan(meta: Any, cfg: Any, partitions: int) -> tuple[Any, int]:
    """The previous planner: every document's key and size on the driver, packed there in one go."""
    from pyspark.sql import functions as F

    from sharding.write.dataset_plan import plan_dataset

    schema = "bucket int, h binary, nbytes binary, coll_pos binary, coll_doc_ids array<string>, coll_ch binary"
    meta = meta.withColumn("bucket", F.shiftright("bucket", 6))  # its 1,024 buckets: the 10-bit key prefix
    rows = (meta.repartition(partitions, "bucket").sortWithinPartitions("bucket", "h", "doc_id", "ch")
            .mapInArrow(_bucket_summaries, schema).collect())
    rows.sort(key=lambda r: r["bucket"])
    parts: dict[str, list[np.ndarray]] = {"h": [], "nbytes": [], "coll_pos": [], "coll_ch": []}
    ids: list[str] = []
    offset = 0
    for r in rows:
        for k in parts:
            a = np.frombuffer(r[k], dtype=np.int64)
            parts[k].append(a + offset if k == "coll_pos" else a)
        ids += list(r["coll_doc_ids"])
        offset += len(r["h"]) // 8
    cat = {k: np.concatenate(v) if v else np.empty(0, np.int64) for k, v in parts.items()}
    s = cfg.shard
    plan = plan_dataset(cat["h"], cat["nbytes"], (cat["coll_pos"], ids, cat["coll_ch"]),
                        target_bytes=s.target_bytes, fill=s.fill, lookahead=s.lookahead)
    return plan, 1


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def child(planner: str, sets: list[str], full: bool) -> None:
    """One measurement in this (fresh) driver process; prints one JSON line."""
    from pipelines import lake
    from pipelines.config import load_config
    from pipelines.lake.spark import build_session, read_table_df
    from pipelines.stages.shard import spark as spark_shard
    from sharding.write.dataset_plan import plan_dataset

    cfg = load_config(None, sets)
    spark = build_session(cfg.spark)
    spark.sparkContext.setLogLevel("ERROR")
    tokens = lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "tokens")
    assert tokens is not None, "no tokens table"
    # the same warm start for both planners: the packing kernels compiled and loaded in this process
    none: tuple[np.ndarray, list[str], np.ndarray] = (np.empty(0, np.int64), [], np.empty(0, np.int64))
    plan_dataset(np.zeros(1, np.int64), np.full(1, 2048, np.int64), none, target_bytes=1 << 20, fill=0.99,
                 lookahead=4)
    base = _status_kb("VmRSS")
    tracemalloc.start()
    planner_fn = collect_plan if planner == "anchor" else spark_shard.plan_shards
    start = time.perf_counter()
    if full:
        spark_shard.plan_shards = planner_fn  # type: ignore[assignment]
        report = spark_shard.run_shard(spark, cfg)
        shards, groups = report.counts["shards_written"], report.counts.get("bucket_groups", 1)
    else:
        df = read_table_df(spark, tokens).select("doc_id", "tokens", "n_tokens", "source")
        meta = df.mapInArrow(spark_shard._meta(cfg.shard.seed), spark_shard.META_SCHEMA)
        plan, groups = planner_fn(meta, cfg, spark.sparkContext.defaultParallelism)
        shards = plan.n_shards
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = _status_kb("VmHWM")
    spark.stop()
    print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024, "over_mb": (peak - base) / 1024,
                      "traced_mb": traced / 2**20, "shards": shards, "groups": groups, "seconds": seconds}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=2_000_000, help="documents at 1x (0.25x is a quarter)")
    ap.add_argument("--target-mb", type=float, default=8.0)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="the whole stage, not the plan alone")
    ap.add_argument("--child", choices=("anchor", "ours"), help=argparse.SUPPRESS)
    ap.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.set, args.full)
        return
    target = int(args.target_mb * 1024 * 1024)
    tmp = Path(tempfile.mkdtemp(prefix="tm-bench-shard-driver-"))
    results: dict[tuple[int, str], dict[str, Any]] = {}
    sizes = (args.docs // 4, args.docs)
    for docs in sizes:
        sets = make_lake(tmp / f"lake{docs}", docs, args.cores, target)
        for planner in ("anchor", "ours"):
            cmd = [sys.executable, "-m", "benchmarks.shard_driver", "--child", planner, *(["--full"] if args.full else [])]
            cmd += [x for s in sets for x in ("--set", s)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[docs, planner] = json.loads(out.strip().splitlines()[-1])
            r = results[docs, planner]
            print(f"{docs:>10,d} docs  {planner:6s}: driver RSS {r['base_mb']:7.1f} MB up, peak {r['peak_mb']:7.1f} MB"
                  f" (+{r['over_mb']:6.1f} MB), Python allocations peak {r['traced_mb']:7.1f} MB, {r['shards']} "
                  f"shards, {r['groups']} groups, {r['seconds']:6.1f} s", flush=True)
    small, big = sizes
    for key, what in (("traced_mb", "Python allocations peak"), ("over_mb", "RSS above start")):
        for planner in ("anchor", "ours"):
            a, b = results[small, planner][key], results[big, planner][key]
            print(f"{planner:6s}: {what}, 1x / 0.25x: {b:.1f} / {a:.1f} MB = {b / max(a, 0.1):.2f}x")
        print(f"1x: anchor / ours ({what}) = {results[big, 'anchor'][key] / max(results[big, 'ours'][key], 0.1):.2f}x")


if __name__ == "__main__":
    main()
