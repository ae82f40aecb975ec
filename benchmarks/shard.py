"""Shard stage vs webdataset's ShardWriter, on the same token samples in one run.

Anchor: `webdataset.ShardWriter(maxsize=target)` fed the same samples (`.tokens` bytes + `.json`) from one
Python process. Ours: `run_shard` on Spark local[N] (read tokens table, plan, shuffle, write, manifest,
commit). Prints throughput (MB/s of shard bytes, samples/s), shard fill (min/median of all but the last, in
% of target) and whether any shard passed the target. Medians of `--repeats` runs.

    .venv/bin/python -m benchmarks.shard --mb 64 --target-mb 8 --cores 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402


def make_tokens(target_mb: float, seed: int) -> pa.Table:
    """Token rows with a long-tailed length distribution (uint16 ids), like a web corpus."""
    from schemas.tokens import TABLE

    rng = np.random.default_rng(seed)
    rows, size, i = [], 0, 0
    while size < target_mb * 1e6:
        n = int(min(rng.lognormal(6.5, 1.3), 400_000))
        rows.append((f"doc-{i:08d}", rng.integers(0, 32000, n, dtype=np.uint16).tobytes(), n, "local:bench"))
        size += 2 * n
        i += 1
    doc_id, tokens, n_tokens, source = zip(*rows, strict=True)
    return pa.table({"doc_id": list(doc_id), "tokens": list(tokens), "n_tokens": list(n_tokens),
                     "source": list(source)}, schema=TABLE.arrow_schema)


def fill_stats(sizes: list[int], target: int) -> str:
    body = sizes[:-1] or sizes
    pct = [100 * s / target for s in body]
    return (f"{len(sizes)} shards, fill min {min(pct):.2f}% median {statistics.median(pct):.2f}%, "
            f"over target: {sum(s > target for s in sizes)}")


def run_webdataset(rows: pa.Table, out: Path, target: int) -> list[int]:
    import webdataset as wds

    out.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(out / "wds-%06d.tar"), maxsize=target, maxcount=10**9, verbose=0) as sink:
        for i, r in enumerate(rows.to_pylist()):
            meta = {"doc_id": r["doc_id"], "n_tokens": r["n_tokens"], "source": r["source"]}
            sink.write({"__key__": f"{i:012d}", "tokens": r["tokens"],
                        "json": json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()})
    return [p.stat().st_size for p in sorted(out.glob("wds-*.tar"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=64.0, help="MB of token bytes")
    ap.add_argument("--target-mb", type=float, default=8.0)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from pipelines import lake
    from pipelines.config import load_config
    from pipelines.lake.spark import build_session
    from pipelines.stages.shard.spark import run_shard
    from schemas.tokens import TABLE

    target = int(args.target_mb * 1024 * 1024)
    rows = make_tokens(args.mb, seed=0)
    tmp = Path(tempfile.mkdtemp(prefix="tm-bench-shard-"))
    cfg = load_config(None, [f"lake.root={tmp / 'lake'}", f"spark.master=local[{args.cores}]",
                             f"shard.target_bytes={target}"])
    catalog = lake.open_catalog(cfg.lake)
    table = lake.ensure_table(catalog, cfg.lake.namespace, TABLE)
    rows = rows.cast(lake.file_schema(table, rows.schema))
    bounds = np.linspace(0, rows.num_rows, 2 * args.cores + 1).astype(int)
    written = [lake.write_data_file(lake.data_dir(table), rows.slice(a, b - a), prefix="b")
               for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    files = [f for f in written if f is not None]  # None: an empty slice, nothing written
    info = {"token_dtype": "uint16", "eod_id": "0", "vocab_size": "32000", "tokenizer_sha256": "bench"}
    lake.commit_files(table, files, lake.snapshot_summary(cfg, "tokenize", "bench",
                                                          {f"tokenmill.{k}": v for k, v in info.items()}))

    wds_runs, wds_sizes = [], []
    for r in range(args.repeats):
        start = time.perf_counter()
        wds_sizes = run_webdataset(rows, tmp / f"wds{r}", target)
        wds_runs.append(time.perf_counter() - start)
    wds_s = statistics.median(wds_runs)

    spark = build_session(cfg.spark)
    spark.sparkContext.setLogLevel("ERROR")
    run_shard(spark, cfg)  # warm-up
    ours_runs, digests = [], set()
    for _ in range(args.repeats):
        start = time.perf_counter()
        report = run_shard(spark, cfg)
        ours_runs.append(time.perf_counter() - start)
        m = json.loads(Path(report.outputs["manifest"]).read_bytes())
        digests.add(hashlib.sha256("".join(s["sha256"] for s in m["shards"]).encode()).hexdigest())
    spark.stop()
    ours_s = statistics.median(ours_runs)
    ours_sizes = [s["bytes"] for s in m["shards"]]
    total = m["total_bytes"]

    print(f"data: {rows.num_rows} docs, {m['n_tokens']} tokens, target {target} bytes")
    print(f"webdataset ShardWriter, 1 process: {sum(wds_sizes) / wds_s / 1e6:8.1f} MB/s "
          f"{rows.num_rows / wds_s:10.0f} samples/s (median {wds_s:.2f} s); {fill_stats(wds_sizes, target)}")
    print(f"shard stage, {args.cores} cores         : {total / ours_s / 1e6:8.1f} MB/s "
          f"{rows.num_rows / ours_s:10.0f} samples/s (median {ours_s:.2f} s); {fill_stats(ours_sizes, target)}")
    print(f"ratio ours / webdataset (time) = {wds_s / ours_s:.2f}x; identical bytes across runs: {len(digests) == 1}")


if __name__ == "__main__":
    main()
