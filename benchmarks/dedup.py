"""Speed of the dedup engine against the anchors, on the same corpus in one process.

    .venv/bin/python -m benchmarks.dedup [--mb 4] [--repeats 3] [--e2e-gb 1.0] [--threads 2]

1. Text -> MinHash signatures (128 permutations, word 5-grams) on one core: ours (numba, numba threads = 1),
   datasketch (`MinHash.bulk` over the same shingle strings, shingling included), rensa (`RMinHash` and
   `CMinHash` over the same shingle strings) and datatrove's `MinhashDedupSignature` (its own shingling).
   MB/s per core (median of --repeats) and our speedup over each.
2. End to end: `near_duplicates_local` over --e2e-gb of documents (real text with word substitutions and
   planted near copies) streamed from Parquet, in a child process with --threads numba threads: time and
   peak RSS. The corpus is generated once under out/dedup-bench/ (git-ignored).
Real text comes from the Debian packages bible-kjv, dict-jargon and fortunes (benchmarks/dedup_quality.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
# the repository root goes before benchmarks/, whose dedup.py (this script) would shadow the dedup package
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.append(str(ROOT / "benchmarks"))

from dedup_quality import base_documents, source_texts, word_stream  # noqa: E402

from benchmarks._timing import median_seconds  # noqa: E402
from dedup.shingle import shingle_strings  # noqa: E402

NUM_PERM, NGRAM = 128, 5


def ours(texts: list[str]) -> Callable[[], object]:
    import numba

    from dedup.minhash import minhash_signatures

    arr = pa.array(texts)
    numba.set_num_threads(1)
    minhash_signatures(arr[:10], num_perm=NUM_PERM, ngram=NGRAM)
    return lambda: minhash_signatures(arr, num_perm=NUM_PERM, ngram=NGRAM)


def datasketch_bulk(texts: list[str]) -> Callable[[], object]:
    from datasketch import MinHash

    def run() -> object:
        sets = [[s.encode() for s in shingle_strings(t, ngram=NGRAM)] for t in texts]
        return MinHash.bulk(sets, num_perm=NUM_PERM)

    return run


def rensa_fn(kind: str) -> Callable[[list[str]], Callable[[], object]]:
    def make(texts: list[str]) -> Callable[[], object]:
        import rensa

        cls = getattr(rensa, kind)

        def run() -> object:
            out = []
            for t in texts:
                m = cls(num_perm=NUM_PERM, seed=42)
                m.update(shingle_strings(t, ngram=NGRAM))
                out.append(m.digest())
            return out

        return run

    return make


def datatrove_fn(texts: list[str]) -> Callable[[], object]:
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    step = MinhashDedupSignature(output_folder=tempfile.mkdtemp(),
                                 config=MinhashConfig(n_grams=NGRAM, num_buckets=16, hashes_per_bucket=8))
    step.get_signature(step.get_shingles(texts[0]))

    return lambda: [step.get_signature(step.get_shingles(t)) for t in texts]


def signature_speed(mb: float, repeats: int) -> None:
    words = word_stream(source_texts())
    rng = np.random.default_rng(0)
    docs = [" ".join(d) for d in base_documents(words, 100_000, rng, 200, 500)]
    texts, size = [], 0
    for d in docs:
        texts.append(d)
        size += len(d.encode())
        if size >= mb * 1e6:
            break
    size_mb = size / 1e6
    print(f"corpus: {len(texts)} documents, {size_mb:.1f} MB of real text; {NUM_PERM} permutations, "
          f"word {NGRAM}-grams; one core; median of {repeats}")
    results: dict[str, float] = {}
    for name, make in [("tokenmill (numba)", ours), ("datasketch MinHash.bulk", datasketch_bulk),
                       ("rensa RMinHash", rensa_fn("RMinHash")), ("rensa CMinHash", rensa_fn("CMinHash")),
                       ("datatrove MinhashDedupSignature", datatrove_fn)]:
        try:
            fn = make(texts)
        except Exception as exc:  # an anchor that does not install or run is reported, not fatal
            print(f"  {name:34s} unavailable: {type(exc).__name__}: {exc}")
            continue
        results[name] = size_mb / median_seconds(fn, repeats)[0]
    base = results["tokenmill (numba)"]
    for name, rate in results.items():
        ratio = "" if name.startswith("tokenmill") else f"   tokenmill is {base / rate:6.1f}x faster"
        print(f"  {name:34s} {rate:9.2f} MB/s per core{ratio}")


def generate_corpus(path: Path, gb: float, seed: int = 0) -> None:
    """Parquet of ~gb GB: windows of real text with 20% word substitutions, 10% planted near copies."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    words = np.array(word_stream(source_texts()), dtype=object)
    vocab = np.unique(words[:300_000])
    writer, written, doc_no = None, 0, 0
    while written < gb * 1e9:
        texts = []
        for _ in range(20_000):
            start = int(rng.integers(0, len(words) - 500))
            doc = words[start : start + int(rng.integers(150, 500))].copy()
            swap = rng.random(len(doc)) < 0.2
            doc[swap] = vocab[rng.integers(0, len(vocab), int(swap.sum()))]
            texts.append(" ".join(doc))
            if rng.random() < 0.1:
                copy = doc.copy()
                edits = rng.random(len(copy)) < 0.01
                copy[edits] = vocab[rng.integers(0, len(vocab), int(edits.sum()))]
                texts.append(" ".join(copy))
        ids = [f"doc-{doc_no + i:09d}" for i in range(len(texts))]
        doc_no += len(texts)
        table = pa.table({"doc_id": ids, "text": texts, "quality_score": rng.random(len(texts)),
                          "n_chars": np.array([len(t) for t in texts], dtype=np.int64)})
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=20_000)
        written += sum(len(t) for t in texts)
    if writer:
        writer.close()


def e2e_child(path: str, threads: int) -> None:
    import resource

    import numba
    import pyarrow.parquet as pq

    from dedup.config import DedupConfig
    from dedup.local import near_duplicates_local

    numba.set_num_threads(threads)
    pf = pq.ParquetFile(path)
    text_bytes = 0

    def batches():  # type: ignore[no-untyped-def]
        nonlocal text_bytes
        for batch in pf.iter_batches(batch_size=20_000):
            text_bytes += batch.column("text").nbytes
            yield batch

    t = time.perf_counter()
    removed = near_duplicates_local(batches(), cfg=DedupConfig())
    seconds = time.perf_counter() - t
    print(json.dumps({"docs": pf.metadata.num_rows, "text_gb": text_bytes / 1e9, "removed": removed.num_rows,
                      "seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))


def end_to_end(gb: float, threads: int) -> None:
    path = ROOT / "out" / "dedup-bench" / f"corpus-{gb:g}gb.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        generate_corpus(path.with_suffix(".tmp"), gb)
        path.with_suffix(".tmp").rename(path)
        print(f"generated {path} in {time.perf_counter() - t:.0f}s")
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--e2e-child", str(path), "--threads", str(threads)],
                         capture_output=True, text=True, env=env, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"end to end, near_duplicates_local, {threads} threads: {r['docs']} docs, {r['text_gb']:.2f} GB text -> "
          f"{r['removed']} removed in {r['seconds']:.1f}s ({r['text_gb'] * 1e3 / r['seconds']:.0f} MB/s), "
          f"peak RSS {r['peak_rss_gb']:.2f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=4.0, help="corpus size of the signature comparison")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--e2e-gb", type=float, default=1.0, help="0 skips the end-to-end run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--e2e-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.e2e_child:
        e2e_child(args.e2e_child, args.threads)
        return
    signature_speed(args.mb, args.repeats)
    if args.e2e_gb > 0:
        end_to_end(args.e2e_gb, args.threads)


if __name__ == "__main__":
    main()
