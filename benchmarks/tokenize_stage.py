"""Tokenize stage vs the raw tokenizer, on the same texts in one run.

Anchor: the HF tokenizer's own `encode_batch` on one core (TOKENIZERS_PARALLELISM=false), batches of
`--batch` documents. Ours: `run_tokenize` on Spark local[N] from a clean_docs table to the tokens table,
Parquet I/O and the commit included. Target: ours >= 0.85 x raw x N. Prints medians of `--repeats` runs.

    .venv/bin/python -m benchmarks.tokenize_stage --mb 32 --cores 2
"""

from __future__ import annotations

import os
import sys

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the anchor is one core; tasks are one core each

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def sample_texts() -> list[str]:
    """Real text from the bundled sample corpus, one string per record."""
    texts: list[str] = []
    sample = REPO / "data" / "sample"
    lines: list[str] = []
    for p in sorted(sample.glob("*.jsonl")):
        lines += p.read_text(errors="replace").splitlines()
    for p in sorted(sample.glob("*.jsonl.gz")):
        with gzip.open(p, "rt", errors="replace") as f:
            lines += list(f)
    for line in lines:  # the sample plants malformed records on purpose; keep the good ones
        try:
            text = json.loads(line).get("text")
        except (ValueError, AttributeError):
            continue
        if isinstance(text, str) and text:
            texts.append(text)
    for p in sorted(sample.glob("*.parquet")):
        texts += [t for t in pq.read_table(p, columns=["text"]).column("text").to_pylist() if t]
    if not texts:
        raise SystemExit(f"no sample texts under {sample}")
    return texts


def corpus(target_mb: float, seed: int = 0) -> list[str]:
    base = sample_texts()
    rng = np.random.default_rng(seed)
    out: list[str] = []
    size = 0
    while size < target_mb * 1e6:
        t = base[int(rng.integers(len(base)))]
        out.append(t)
        size += len(t.encode())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=32.0, help="MB of UTF-8 text")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=16384)
    args = ap.parse_args()

    from tokenizers import Tokenizer

    from pipelines import lake
    from pipelines.config import load_config
    from pipelines.lake.spark import build_session
    from pipelines.stages.tokenize.spark import run_tokenize
    from pipelines.stages.tokenize.train import save_tokenizer, train_bpe
    from schemas.clean_docs import TABLE as CLEAN_DOCS

    texts = corpus(args.mb)
    nbytes = sum(len(t.encode()) for t in texts)
    tmp = Path(tempfile.mkdtemp(prefix="tm-bench-tok-"))
    tok_path = save_tokenizer(train_bpe(texts[:5000], vocab_size=args.vocab), tmp / "tokenizer.json")
    tok = Tokenizer.from_file(str(tok_path))

    def raw(encode) -> tuple[float, int]:  # noqa: ANN001
        start = time.perf_counter()
        n = 0
        for i in range(0, len(texts), args.batch):
            n += sum(len(e.ids) for e in encode(texts[i : i + args.batch], add_special_tokens=False))
        return time.perf_counter() - start, n

    raw_runs = [raw(tok.encode_batch) for _ in range(args.repeats)]
    raw_s = statistics.median(r[0] for r in raw_runs)
    n_tokens = raw_runs[0][1]
    fast_s = statistics.median(raw(tok.encode_batch_fast)[0] for _ in range(args.repeats))

    cfg = load_config(None, [f"lake.root={tmp / 'lake'}", f"spark.master=local[{args.cores}]",
                             f"tokenize.tokenizer={tok_path}", f"tokenize.batch_size={args.batch}"])
    catalog = lake.open_catalog(cfg.lake)
    table = lake.ensure_table(catalog, cfg.lake.namespace, CLEAN_DOCS)
    schema = CLEAN_DOCS.arrow_schema
    n = len(texts)
    cols = {name: pa.nulls(n, schema.field(name).type) for name in schema.names}
    cols.update(doc_id=pa.array([f"d{i}" for i in range(n)], pa.large_string()),
                text=pa.array(texts, pa.large_string()), source_type=pa.array(["local"] * n, pa.large_string()),
                source_uri=pa.array(["bench"] * n, pa.large_string()))
    full = pa.table(cols, schema=schema).cast(lake.file_schema(table, schema))
    bounds = np.linspace(0, n, 2 * args.cores + 1).astype(int)
    written = [lake.write_data_file(lake.data_dir(table), full.slice(a, b - a), prefix="b")
               for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    files = [f for f in written if f is not None]  # None: an empty slice, nothing written
    lake.commit_files(table, files, lake.snapshot_summary(cfg, "curate", "bench"), overwrite=True)

    spark = build_session(cfg.spark)
    spark.sparkContext.setLogLevel("ERROR")
    run_tokenize(spark, cfg)  # warm-up: JVM, Python workers, tokenizer load
    stage_runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        report = run_tokenize(spark, cfg)
        stage_runs.append(time.perf_counter() - start)
        if report.counts["tokens"] != n_tokens:
            raise SystemExit(f"stage produced {report.counts['tokens']} tokens, raw {n_tokens}")
    stage_s = statistics.median(stage_runs)
    spark.stop()

    raw_tps, stage_tps = n_tokens / raw_s, n_tokens / stage_s
    print(f"corpus: {n} docs, {nbytes / 1e6:.1f} MB, {n_tokens} tokens, vocab {tok.get_vocab_size()}")
    print(f"raw encode_batch, 1 core : {raw_tps / 1e6:8.3f} M tokens/s  {nbytes / raw_s / 1e6:7.2f} MB/s  "
          f"(median {raw_s:.2f} s)")
    print(f"raw encode_batch_fast, 1 : {n_tokens / fast_s / 1e6:8.3f} M tokens/s  {nbytes / fast_s / 1e6:7.2f} MB/s  "
          f"(median {fast_s:.2f} s; what the stage calls)")
    print(f"tokenize stage, {args.cores} cores  : {stage_tps / 1e6:8.3f} M tokens/s  "
          f"{nbytes / stage_s / 1e6:7.2f} MB/s  (median {stage_s:.2f} s, end to end incl. Parquet + commit)")
    print(f"ratio stage / (raw encode_batch x {args.cores}) = {stage_tps / (raw_tps * args.cores):.3f}   "
          "(target >= 0.85)")
    print(f"ratio stage / (raw encode_batch_fast x {args.cores}) = "
          f"{stage_tps / (n_tokens / fast_s * args.cores):.3f}")


if __name__ == "__main__":
    main()
