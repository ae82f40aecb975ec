"""Incremental near dedup of a new batch against a persisted index of earlier kept documents, against the
anchors, on the same data in one process.

    .venv/bin/python -m benchmarks.dedup_incremental [--old 20000] [--new 1000] [--copies 200] [--repeats 3]

Data: --old real-text documents (bible-kjv, dict-jargon, fortunes word windows of 80-600 words) form the
earlier dataset version; the new batch has --new fresh documents plus --copies near copies (2% word edits)
of old documents. The old side is prepared once and not timed (it is persisted): our dedup_index rows
(doc_id, signature, band_keys) as an Arrow table, datasketch's MinHashLSH with the old documents inserted.
Timed (median of --repeats), each finding the new batch's duplicates among itself and against the old side:
  ours          dedup.incremental.near_duplicates_against_index_local (signatures of the batch + index join)
  datasketch    MinHash.bulk of the batch (same shingle strings), then query + insert per document
  full          dedup.local.near_duplicates_local over old + new (what a non-incremental run recomputes)
Printed: seconds, new docs/s, new docs removed, recall (planted copies removed), the fraction of new docs
whose fate (removed or not) matches the full recompute, and each time over ours. Word windows wrap around
the source text, so the corpus also holds natural near duplicates beyond the planted ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.append(str(ROOT / "benchmarks"))

from dedup_quality import base_documents, edit, source_texts, word_stream  # noqa: E402

from benchmarks._timing import median_seconds  # noqa: E402
from dedup.config import DedupConfig  # noqa: E402
from dedup.incremental import near_duplicates_against_index_local  # noqa: E402
from dedup.local import near_duplicates_local  # noqa: E402
from dedup.lsh import band_keys, resolve_bands  # noqa: E402
from dedup.minhash import minhash_signatures  # noqa: E402
from dedup.shingle import shingle_strings  # noqa: E402

CFG = DedupConfig(keep=["doc_id"])  # old ids ("a...") sort before new ones ("n..."): full mode keeps the old


def corpus(n_old: int, n_new: int, n_copies: int, seed: int) -> tuple[list[str], list[str], dict[str, str]]:
    """Old texts, new texts and {new copy id: old id} of the planted near copies."""
    rng = np.random.default_rng(seed)
    words = word_stream(source_texts())
    vocab = sorted(set(words[:200_000]))
    bases = [" ".join(d) for d in base_documents(words, n_old + n_new, rng)]
    old, new = bases[:n_old], bases[n_old:]
    planted = {}
    for i, j in enumerate(rng.choice(n_old, size=n_copies, replace=False)):
        new.append(" ".join(edit(old[int(j)].split(), 0.02, rng, vocab)))
        planted[f"n{n_new + i:07d}"] = f"a{int(j):07d}"
    return old, new, planted


def our_index(old: list[str]) -> pa.Table:
    bands, rows = resolve_bands(CFG.threshold, CFG.num_perm, CFG.bands, CFG.rows, CFG.false_positive_weight,
                                CFG.false_negative_weight)
    sig = minhash_signatures(pa.array(old), num_perm=CFG.num_perm, ngram=CFG.ngram, seed=CFG.seed)
    width = 4 * CFG.num_perm
    offsets = pa.py_buffer(np.arange(len(sig) + 1, dtype=np.int32) * width)
    keys = band_keys(sig, bands, rows)
    return pa.table({
        "doc_id": pa.array([f"a{i:07d}" for i in range(len(old))]),
        "signature": pa.Array.from_buffers(pa.binary(), len(sig), [None, offsets, pa.py_buffer(sig)]),
        "band_keys": pa.ListArray.from_arrays(pa.array(np.arange(len(sig) + 1, dtype=np.int32) * bands),
                                              pa.array(keys.reshape(-1))),
    })


def datasketch_side(old: list[str]):  # type: ignore[no-untyped-def]
    from datasketch import MinHash, MinHashLSH

    bands, rows = resolve_bands(CFG.threshold, CFG.num_perm, CFG.bands, CFG.rows, CFG.false_positive_weight,
                                CFG.false_negative_weight)
    lsh = MinHashLSH(num_perm=CFG.num_perm, params=(bands, rows))
    shingles = [[s.encode() for s in shingle_strings(t, ngram=CFG.ngram)] for t in old]
    for i, m in enumerate(MinHash.bulk(shingles, num_perm=CFG.num_perm, seed=CFG.seed)):
        lsh.insert(f"a{i:07d}", m)
    return lsh


def datasketch_batch(lsh, new: list[str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Query each new document; a hit makes it a duplicate (of the smallest matching id), else it is
    inserted so later documents of the batch can match it. Removed entries are undone afterwards."""
    from datasketch import MinHash

    shingles = [[s.encode() for s in shingle_strings(t, ngram=CFG.ngram)] for t in new]
    removed, inserted = {}, []
    for i, m in enumerate(MinHash.bulk(shingles, num_perm=CFG.num_perm, seed=CFG.seed)):
        key = f"n{i:07d}"
        hits = lsh.query(m)
        if hits:
            removed[key] = min(hits)
        else:
            lsh.insert(key, m)
            inserted.append(key)
    for key in inserted:  # leave the persisted side as it was for the next repeat
        lsh.remove(key)
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=int, default=20000)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    old, new, planted = corpus(args.old, args.new, args.copies, args.seed)
    new_ids = [f"n{i:07d}" for i in range(len(new))]
    batch = pa.table({"doc_id": new_ids, "text": new})
    index = our_index(old)
    lsh = datasketch_side(old)
    both = pa.table({"doc_id": [f"a{i:07d}" for i in range(len(old))] + new_ids, "text": old + new})
    near_duplicates_against_index_local([batch.slice(0, 10)], index, cfg=CFG)  # numba warm-up

    t_ours, ours = median_seconds(lambda: near_duplicates_against_index_local([batch], index, cfg=CFG), args.repeats)
    t_ds, ds = median_seconds(lambda: datasketch_batch(lsh, new), args.repeats)
    t_full, full = median_seconds(lambda: near_duplicates_local([both], cfg=CFG), args.repeats)

    ours_map = dict(zip(ours.column("doc_id").to_pylist(), ours.column("kept_doc_id").to_pylist(), strict=True))
    full_map = {d: k for d, k in zip(full.column("doc_id").to_pylist(), full.column("kept_doc_id").to_pylist(),
                                     strict=True) if d.startswith("n")}

    def recall(found: dict[str, str]) -> float:
        return sum(d in found for d in planted) / max(len(planted), 1)

    def agree(found: dict[str, str]) -> float:
        return sum((d in found) == (d in full_map) for d in new_ids) / len(new_ids)

    n = len(new)
    print(f"old (indexed) docs: {len(old)}, new batch: {n} ({args.copies} planted near copies), "
          f"index {index.nbytes / 2**20:.1f} MiB, repeats {args.repeats}")
    print(f"{'engine':<12}{'seconds':>10}{'new docs/s':>14}{'removed':>10}{'recall':>9}{'=full':>8}{'ours x':>9}")
    for name, t, found in (("ours", t_ours, ours_map), ("datasketch", t_ds, ds), ("full", t_full, full_map)):
        print(f"{name:<12}{t:>10.3f}{n / t:>14.0f}{len(found):>10}{recall(found):>9.3f}{agree(found):>8.3f}"
              f"{t / t_ours:>9.2f}")


if __name__ == "__main__":
    main()
