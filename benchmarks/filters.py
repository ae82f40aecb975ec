"""Throughput of our four heuristic filter families against datatrove's, on the same documents, one run.

    .venv/bin/python -m benchmarks.filters [--repeats 3] [--copies 1]

Documents: the committed parity corpus (real text from Debian packages), `--copies` times. Each family runs
alone, then all four in a row (datatrove: each filter on every document, as a pipeline would; ours: one
`curate_batch` call with the four filters). Both sides run single-threaded in this process, so figures are
per core. Prints the median of `--repeats` timings, documents/s, MB/s and our speed-up.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit" / "filters"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parity import RAW, corpus_batch, datatrove_filter, load_corpus  # noqa: E402

from benchmarks._timing import median_seconds  # noqa: E402
from pipelines.filters import curate_batch  # noqa: E402
from pipelines.filters.config import (  # noqa: E402
    C4QualityFilter,
    FilterSpec,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)

FAMILIES: dict[str, FilterSpec] = {
    "gopher_quality": GopherQualityFilter(),
    "gopher_repetition": GopherRepetitionFilter(),
    "c4_quality": C4QualityFilter(),
    "fineweb_quality": FineWebQualityFilter(),
}


def run_datatrove(names: list[str], texts: list[str]) -> None:
    from datatrove.data import Document

    filters = [datatrove_filter(n) for n in names]
    for i, t in enumerate(texts):
        doc = Document(text=t, id=str(i))
        for f in filters:
            if f.filter(doc) is not True:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=1)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    docs = load_corpus() * args.copies
    texts = [d["text"] for d in docs]
    batch = corpus_batch(docs)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"corpus: {len(docs)} documents, {mb:.2f} MB, median of {args.repeats} runs, 1 core")
    curate_batch(batch, normalize=RAW, filters=list(FAMILIES.values()))  # compile / load numba kernels
    run_datatrove(list(FAMILIES), texts[:20])  # load spaCy

    rows = [(name, [name]) for name in FAMILIES] + [("all four", list(FAMILIES))]
    header = f"{'family':<18} {'ours docs/s':>12} {'ours MB/s':>10} {'dt docs/s':>10} {'dt MB/s':>8} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for label, names in rows:
        specs = [FAMILIES[n] for n in names]
        ours, _ = median_seconds(partial(curate_batch, batch, normalize=RAW, filters=specs), args.repeats)
        theirs, _ = median_seconds(partial(run_datatrove, names, texts), args.repeats)
        print(
            f"{label:<18} {len(docs) / ours:>12.0f} {mb / ours:>10.2f} {len(docs) / theirs:>10.0f} "
            f"{mb / theirs:>8.2f} {theirs / ours:>6.1f}x"
        )


if __name__ == "__main__":
    main()
