"""Parquet ingest decode throughput on one core: the vectorised decoder against the row-by-row one it replaced,
and a plain reader (`pyarrow.parquet.read_table` + `to_pylist()`) as the anchor, on the same file in one run.

    .venv/bin/python -m benchmarks.ingest_parquet [--records 200000] [--repeats 3] [--spark]

The file: `--records` records of real text (runs of consecutive lines cut from the bundled sample corpus:
KJV, Jargon File, Debian Reference) with an `id`, the `text` and three metadata columns (`source`, `title`,
`score`), written with pyarrow's defaults. Every timing reads the file from the page cache in batches of
8192 rows, as `_read_parquet` does, and is the median of `--repeats` runs; the process is pinned to one CPU
and Arrow to one thread. Rows: old = `_decode_parquet_rows` (to_pylist, `doc_fields` per row); new =
`decode_parquet_arrow`; reader = `read_object` (new decoder plus the split into raw_docs / quarantine
columns); floor = reading the batches alone. `--spark` also times the whole ingest stage (`run_ingest`, Spark local[2], Iceberg commits).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks._timing import median_seconds
from pipelines.sources.config import LocalSource
from pipelines.sources.objects import ReadOptions, list_local, read_object
from pipelines.sources.parquet_records import _decode_parquet_rows, decode_parquet_arrow

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
BATCH_ROWS = 8192


def sample_documents() -> list[tuple[str, str, str]]:
    """(source, title, text) of the sample corpus's JSONL and Parquet records that carry text."""
    docs: list[tuple[str, str, str]] = []
    for name in ("kjv.jsonl", "jargon.jsonl"):
        for line in (SAMPLE / name).read_bytes().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:  # incl. UnicodeDecodeError: the sample plants malformed lines
                continue
            if isinstance(rec, dict) and isinstance(rec.get("text"), str):
                docs.append((str(rec.get("source", name)), str(rec.get("title", "")), rec["text"]))
    for rec in pq.read_table(SAMPLE / "debian-reference.parquet").to_pylist():
        if rec.get("text"):
            docs.append((rec.get("source") or "", rec.get("title") or "", rec["text"]))
    return docs


def make_table(n: int, seed: int) -> pa.Table:
    """`n` records, each 1-12 consecutive non-blank lines of one sample document."""
    rng = np.random.default_rng(seed)
    docs = sample_documents()
    lines = [[ln for ln in text.splitlines() if ln.strip()] or [text] for _, _, text in docs]
    picks = rng.integers(0, len(docs), size=n)
    spans = rng.integers(1, 13, size=n)
    texts, sources, titles = [], [], []
    for d, span in zip(picks.tolist(), spans.tolist(), strict=True):
        doc_lines = lines[d]
        start = int(rng.integers(0, max(1, len(doc_lines) - span + 1)))
        texts.append("\n".join(doc_lines[start:start + span]))
        sources.append(docs[d][0])
        titles.append(docs[d][1])
    return pa.table({
        "id": [f"bench-{i}" for i in range(n)], "text": texts, "source": sources, "title": titles,
        "score": np.round(rng.random(n), 4),
    })


def one_core() -> str:
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def counted(fn: Callable[[], int], want: int) -> Callable[[], int]:
    """`fn`, stopping the benchmark when a run does not count `want` records."""
    def run() -> int:
        got = fn()
        if got != want:
            raise SystemExit(f"{fn.__name__}: {got} records, expected {want}")
        return got
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spark", action="store_true", help="also time run_ingest on the file (Spark local[2])")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tokenmill-bench-parquet-"))
    try:
        path = tmp / "in" / "corpus.parquet"
        path.parent.mkdir()
        table = make_table(args.records, args.seed)
        pq.write_table(table, path)
        file_mb = path.stat().st_size / 1e6
        text_mb = sum(len(t.encode()) for t in table.column("text").to_pylist()) / 1e6
        n = table.num_rows
        del table
        pinned = one_core()
        old_decode = functools.partial(_decode_parquet_rows, id_field="id", text_field="text",
                                       max_record_bytes=8 << 20)
        new_decode = functools.partial(decode_parquet_arrow, id_field="id", text_field="text",
                                       max_record_bytes=8 << 20)

        def batches() -> Iterator[pa.RecordBatch]:
            return pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, use_threads=False)

        def old() -> int:
            return sum(len(old_decode(b)[1]) for b in batches())

        def new() -> int:
            return sum(new_decode(b)[0].num_rows for b in batches())

        def read_only() -> int:
            return sum(b.num_rows for b in batches())

        def anchor() -> int:
            return len(pq.read_table(path, use_threads=False).to_pylist())

        ref = list_local(LocalSource(path=str(path)))[0]

        def reader() -> int:
            return sum(docs.num_rows + bad.num_rows for docs, bad in read_object(ref, "local", ReadOptions()))

        # the same records either way, first
        for b in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            want, want_raws = old_decode(b)
            got, got_raws = new_decode(b)
            if got.to_pydict() != want.to_arrow().to_pydict() or got_raws != want_raws:
                raise SystemExit("the vectorised decoder disagrees with the row-by-row one")

        times = {name: median_seconds(counted(fn, n), args.repeats)[0]
                 for name, fn in (("old", old), ("new", new), ("anchor", anchor), ("reader", reader),
                                  ("read", read_only))}
        spark_s = spark_ingest(path.parent, tmp / "lake", n) if args.spark else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    out = sys.stdout
    out.write(f"parquet ingest decode: {n} records, {text_mb:.1f} MB of text, {file_mb:.1f} MB file, "
              f"1 core ({pinned}), median of {args.repeats}\n")
    rows = [
        ("old: row-by-row decode (to_pylist + doc_fields)", times["old"]),
        ("new: decode_parquet_arrow", times["new"]),
        ("new + split into raw_docs/quarantine (read_object)", times["reader"]),
        ("anchor: pq.read_table + to_pylist", times["anchor"]),
        ("floor: iter_batches alone, no decoding", times["read"]),
    ]
    out.write(f"{'':52} {'rec/s':>11} {'MB/s':>7} {'vs old':>7} {'vs anchor':>9}\n")
    for label, seconds in rows:
        out.write(f"{label:52} {n / seconds:11,.0f} {text_mb / seconds:7.1f} {times['old'] / seconds:7.2f} "
                  f"{times['anchor'] / seconds:9.2f}\n")
    out.write("every row reads and decompresses the file; 'vs' columns are speed-ups (other time / this time)\n")
    if spark_s is not None:
        out.write(f"full ingest stage (run_ingest, Spark local[2], one file, into new tables): {n / spark_s:,.0f} "
                  f"rec/s ({spark_s:.1f} s, one run after a warm-up)\n")


def spark_ingest(folder: Path, root: Path, n: int) -> float:
    """Seconds of one `run_ingest` of `folder` into a fresh lake, after a warm-up run on another lake."""
    if hasattr(os, "sched_setaffinity"):  # the JVM inherits the pinning otherwise
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    from pipelines import lake
    from pipelines.config import Config, load_config
    from pipelines.lake.spark import build_session
    from pipelines.stages.ingest.spark import run_ingest

    base = load_config(None, ["spark.master=local[2]", "ingest.parallelism=2"])
    spark = build_session(base.spark)
    try:
        seconds = 0.0
        for attempt in ("warmup", "timed"):
            data = base.model_dump()
            data["lake"]["root"] = str(root / attempt)
            data["sources"] = [{"type": "local", "path": str(folder)}]
            cfg = Config.model_validate(data)
            catalog = lake.open_catalog(cfg.lake)
            for name in ("raw_docs", "quarantine"):
                lake.ensure_table(catalog, cfg.lake.namespace, name)
            start = time.perf_counter()
            report = run_ingest(spark, cfg)
            seconds = time.perf_counter() - start
            if report.counts["records_read"] != n:
                raise SystemExit(f"run_ingest read {report.counts['records_read']} records, expected {n}")
        return seconds
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
