"""End-to-end near dedup of the 1 GB benchmark corpus on Spark `local[N]`: exact then MinHash-LSH near dedup
through `dedup.spark` (the curate stage's path), wall time and peak memory of the whole process tree (driver
JVM + Python workers), next to the local (no Spark) path's figures from `benchmarks/dedup.py`.

    python -m benchmarks.dedup_spark [--cores 2] [--gb 1]
    python -m benchmarks.dedup_spark --sample      # the bundled 4.8 MB sample: Spark vs local, side by side

The corpus is the one `python -m benchmarks.dedup --e2e-gb 1` generates under out/dedup-bench/ (real text
from Debian's text packages with word substitutions and planted near copies).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]


class TreeRss:
    """Samples the summed RSS of this process and all its descendants every `every` seconds; keeps the peak."""

    def __init__(self, every: float = 0.2) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
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


def sample_side_by_side(cores: int) -> None:
    """Exact then near dedup of the sample through dedup.local and dedup.spark in one run; medians of 3."""
    import statistics

    import pyarrow.compute as pc

    from dedup.config import DedupConfig
    from dedup.local import exact_duplicates_local, near_duplicates_local
    from dedup.spark import exact_duplicates, near_duplicates
    from pipelines.config import SparkConfig
    from pipelines.lake.spark import build_session

    table, cfg = sample_table(), DedupConfig()

    def local() -> int:
        exact = exact_duplicates_local([table], keep=cfg.keep)
        rest = table.filter(pc.invert(pc.is_in(table["doc_id"], value_set=exact["doc_id"])))
        return exact.num_rows + near_duplicates_local(rest.to_batches(max_chunksize=4096), cfg=cfg).num_rows

    spark = build_session(SparkConfig(master=f"local[{cores}]", app_name="dedup-bench",
                                      conf={"spark.sql.shuffle.partitions": str(4 * cores),
                                            "spark.ui.showConsoleProgress": "false"}))
    docs = spark.createDataFrame(table.to_pandas()).cache()
    docs.count()  # the input in Spark's memory, as the curate stage has it after its filter pass

    def on_spark() -> int:
        exact = exact_duplicates(docs, keep=cfg.keep).localCheckpoint()
        rest = docs.join(exact.select("doc_id"), "doc_id", "left_anti")
        return exact.count() + near_duplicates(rest, cfg=cfg).count()

    times: dict[str, list[float]] = {"local": [], "spark": []}
    removed: dict[str, int] = {}
    for _ in range(3):
        for name, fn in (("local", local), ("spark", on_spark)):
            t = time.perf_counter()
            removed[name] = fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"sample: {table.num_rows:,} docs, {sum(map(len, table['text'].to_pylist())) / 1e6:.1f} MB; removed "
          f"local {removed['local']:,}, spark {removed['spark']:,}; median of 3: local {med['local']:.2f}s, "
          f"spark local[{cores}] {med['spark']:.2f}s: spark / local = {med['spark'] / med['local']:.2f}")
    spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--sample", action="store_true", help="the bundled sample, Spark and local side by side")
    args = parser.parse_args()
    if args.sample:
        sample_side_by_side(args.cores)
        return
    path = ROOT / "out" / "dedup-bench" / f"corpus-{args.gb:g}gb.parquet"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `python -m benchmarks.dedup --e2e-gb {args.gb:g}` first")

    from dedup.config import DedupConfig
    from dedup.exact import text_hash128_hex
    from dedup.spark import exact_duplicates, near_duplicates
    from pipelines.config import SparkConfig
    from pipelines.lake.spark import build_session

    spark = build_session(SparkConfig(master=f"local[{args.cores}]", app_name="dedup-bench",
                                      conf={"spark.sql.shuffle.partitions": str(4 * args.cores),
                                            "spark.ui.showConsoleProgress": "false"}))
    cfg = DedupConfig()
    with tempfile.TemporaryDirectory() as tmp, TreeRss() as rss:
        t = time.perf_counter()
        df = spark.read.parquet(str(path)).select("doc_id", "text", "quality_score", "n_chars")

        def with_hash(batches):  # type: ignore[no-untyped-def]  # exact_hash as the curate stage computes it
            for b in batches:
                yield pa.RecordBatch.from_arrays([*b.columns, text_hash128_hex(b.column("text"))],
                                                 names=[*b.schema.names, "exact_hash"])

        schema = "doc_id string, text string, quality_score double, n_chars long, exact_hash string"
        docs = df.mapInArrow(with_hash, schema).cache()
        n_docs = docs.count()
        exact = exact_duplicates(docs, keep=cfg.keep).cache()
        n_exact = exact.count()
        rest = docs.join(exact.select("doc_id"), "doc_id", "left_anti")
        near = near_duplicates(rest, cfg=cfg, checkpoint_dir=str(Path(tmp) / "ckpt"))
        n_near = near.count()
        seconds = time.perf_counter() - t
    text_gb = path.stat().st_size  # compressed size, for reference only
    print(f"spark local[{args.cores}]: {n_docs:,} docs ({args.gb:g} GB of text, {text_gb / 1e9:.2f} GB Parquet): "
          f"{n_exact:,} exact + {n_near:,} near duplicates removed in {seconds:.1f} s; "
          f"peak RSS of the process tree {rss.peak / 1e9:.2f} GB")
    spark.stop()


if __name__ == "__main__":
    main()
