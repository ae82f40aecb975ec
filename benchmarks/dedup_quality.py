"""Quality of near dedup with default parameters, against exact Jaccard ground truth over all pairs.

Corpus: real text (KJV bible via the `bible` program of bible-kjv, the Jargon File from dict-jargon,
English fortunes) cut into documents of 80-600 words; a share of them get near copies with planted word
edits (substitutions, insertions, deletions) at known rates. Ground truth: the exact Jaccard similarity of
the documents' shingle sets (the engine's own shingling, `dedup.shingle.shingle_strings`) for every pair,
computed as a sparse product. Reported, for the local engine with `DedupConfig()` defaults:
  * recall of pairs with J >= 0.8 (both in one cluster; target >= 0.97)
  * precision of removals: share of removed documents whose Jaccard to their kept document is >= 0.5
    (target >= 0.99)
  * recall per Jaccard bin.

    .venv/bin/python -m benchmarks.dedup_quality [--docs 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

# benchmarks/ holds scripts named like modules (dedup.py, tokenize.py): keep the folder off the front
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from dedup.config import DedupConfig  # noqa: E402
from dedup.local import near_duplicates_local  # noqa: E402
from dedup.lsh import resolve_bands  # noqa: E402
from dedup.shingle import shingle_strings  # noqa: E402

EDIT_RATES = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)


def source_texts() -> dict[str, str]:
    """The real texts installed by Debian packages; raises SystemExit naming a missing package."""
    texts: dict[str, str] = {}
    try:
        out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True)
        texts["kjv"] = re.sub(r"^\S+ ", "", out.stdout, flags=re.M)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"needs the bible-kjv package (bible program): {exc}") from exc
    jargon = "/usr/share/dictd/jargon.dict.dz"
    if not os.path.exists(jargon):
        raise SystemExit("needs the dict-jargon package")
    with gzip.open(jargon, "rt", errors="replace") as fh:
        texts["jargon"] = fh.read()
    parts = []
    for path in sorted(glob.glob("/usr/share/games/fortunes/*")):
        if os.path.isfile(path) and not os.path.islink(path) and not path.endswith((".dat", ".u8")):
            parts.append(Path(path).read_text(errors="replace"))
    if not parts:
        raise SystemExit("needs the fortunes package")
    texts["fortunes"] = "\n".join(parts).replace("\n%\n", "\n")
    return texts


def word_stream(texts: dict[str, str]) -> list[str]:
    words: list[str] = []
    for name in sorted(texts):
        words.extend(texts[name].split())
    return words


def base_documents(words: list[str], n_docs: int, rng: np.random.Generator, lo: int = 80, hi: int = 600) -> list[list[str]]:
    """Consecutive, non-overlapping windows of the word stream (wrapping once when it runs out)."""
    docs, pos = [], 0
    for _ in range(n_docs):
        length = int(rng.integers(lo, hi))
        if pos + length > len(words):
            pos = int(rng.integers(0, 1000))
        docs.append(words[pos : pos + length])
        pos += length
    return docs


def edit(words: list[str], rate: float, rng: np.random.Generator, vocab: list[str]) -> list[str]:
    """Apply round(rate * len) word edits at random positions: a third each substitute, insert, delete."""
    out = list(words)
    for _ in range(int(round(rate * len(words)))):
        op = int(rng.integers(0, 3))
        i = int(rng.integers(0, max(len(out), 1)))
        if op == 0 and out:
            out[i] = vocab[int(rng.integers(0, len(vocab)))]
        elif op == 1:
            out.insert(i, vocab[int(rng.integers(0, len(vocab)))])
        elif out:
            del out[i]
    return out


def planted_corpus(n_base: int, seed: int) -> tuple[list[str], list[int]]:
    """Documents and the base document each derives from (a quarter of bases get 1-3 edited copies)."""
    rng = np.random.default_rng(seed)
    words = word_stream(source_texts())
    vocab = sorted(set(words[:200_000]))
    bases = base_documents(words, n_base, rng)
    docs, origin = [], []
    for b, doc in enumerate(bases):
        docs.append(" ".join(doc))
        origin.append(b)
        if rng.random() < 0.25:
            for _ in range(int(rng.integers(1, 4))):
                rate = EDIT_RATES[int(rng.integers(0, len(EDIT_RATES)))]
                docs.append(" ".join(edit(doc, rate, rng, vocab)))
                origin.append(b)
    return docs, origin


def jaccard_pairs(docs: list[str], ngram: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, J) for every pair i < j with a shared shingle: exact Jaccard of the shingle sets."""
    from scipy import sparse

    ids: dict[str, int] = {}
    rows, cols = [], []
    for d, text in enumerate(docs):
        for sh in set(shingle_strings(text, ngram=ngram)):
            rows.append(d)
            cols.append(ids.setdefault(sh, len(ids)))
    x = sparse.csr_matrix((np.ones(len(rows), np.float64), (rows, cols)), shape=(len(docs), len(ids)))
    sizes = np.asarray(x.sum(axis=1)).ravel()
    inter = sparse.triu(x @ x.T, k=1).tocoo()
    i, j, n = inter.row, inter.col, inter.data
    return i, j, n / (sizes[i] + sizes[j] - n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=4000, help="base documents (before planted copies)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a DedupConfig field (VALUE parsed as YAML), e.g. --set num_perm=256")
    args = parser.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    cfg = DedupConfig(**overrides)

    t0 = time.perf_counter()
    docs, _ = planted_corpus(args.docs, args.seed)
    doc_ids = [f"d{i:07d}" for i in range(len(docs))]
    i, j, jac = jaccard_pairs(docs, cfg.ngram)
    t1 = time.perf_counter()
    rng = np.random.default_rng(args.seed + 1)
    table = pa.table({
        "doc_id": doc_ids,
        "text": docs,
        "quality_score": rng.random(len(docs)),
        "n_chars": np.array([len(d) for d in docs], dtype=np.int64),
    })
    t2 = time.perf_counter()
    result = near_duplicates_local(table.to_batches(max_chunksize=1000), cfg=cfg)
    t3 = time.perf_counter()

    index = {d: k for k, d in enumerate(doc_ids)}
    cluster = np.arange(len(docs))
    removed = np.array([index[d] for d in result["doc_id"].to_pylist()], dtype=np.int64)
    kept = np.array([index[d] for d in result["kept_doc_id"].to_pylist()], dtype=np.int64)
    cluster[removed] = kept
    pair_j = {(int(a), int(b)): float(v) for a, b, v in zip(i, j, jac, strict=True)}

    def jaccard(a: int, b: int) -> float:
        return pair_j.get((min(a, b), max(a, b)), 0.0)

    together = cluster[i] == cluster[j]
    print(f"corpus: {len(docs)} docs, {sum(map(len, docs)) / 1e6:.1f} MB, {len(jac)} pairs sharing a shingle; "
          f"ground truth {t1 - t0:.1f}s, dedup {t3 - t2:.2f}s")
    bands, rows = resolve_bands(cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.false_positive_weight,
                                cfg.false_negative_weight)
    print(f"config: threshold={cfg.threshold} num_perm={cfg.num_perm} ngram={cfg.ngram} bands x rows={bands}x{rows} "
          f"verify={cfg.verify} verify_threshold={cfg.resolved_verify_threshold():.2f}"
          f"{' (overrides: ' + ' '.join(args.set) + ')' if args.set else ' (defaults)'}")
    hi = jac >= 0.8
    recall = together[hi].mean() if hi.any() else float("nan")
    print(f"recall of pairs with J >= 0.8: {recall:.4f} ({together[hi].sum()}/{hi.sum()})  target >= 0.97")
    good = np.array([jaccard(r, k) >= 0.5 for r, k in zip(removed, kept, strict=True)], dtype=bool)
    precision = good.mean() if len(good) else float("nan")
    print(f"precision of removals (J to kept >= 0.5): {precision:.4f} ({good.sum()}/{len(good)})  target >= 0.99")
    low = np.array([jaccard(r, k) for r, k in zip(removed, kept, strict=True)])
    if len(low):
        print(f"removed documents' Jaccard to kept: min {low.min():.3f}, 1st percentile {np.quantile(low, 0.01):.3f}")
    print("recall per Jaccard bin:")
    edges = [0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0001]
    for lo, up in zip(edges[:-1], edges[1:], strict=True):
        m = (jac >= lo) & (jac < up)
        if m.any():
            print(f"  [{lo:.2f}, {min(up, 1.0):.2f}{']' if up > 1 else ')'}: {together[m].mean():.4f}  ({m.sum()} pairs)")


if __name__ == "__main__":
    main()
