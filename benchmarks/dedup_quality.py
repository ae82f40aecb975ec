"""Quality of near dedup with default parameters, against exact Jaccard ground truth over all pairs.

Corpus: real text cut into documents of 80-600 words (the Debian packages bible-kjv, dict-jargon and
fortunes when installed, else the same texts as bundled in data/sample/); a quarter of them get 1-3 near
copies with planted word edits (substitutions, insertions, deletions) at known rates. Ground truth: the
exact Jaccard similarity of the documents' shingle sets (the engine's own shingling,
`dedup.shingle.shingle_strings`) for every pair, computed as a sparse product. Three engines side by side on
the same corpus and keep rule:
  * ours: `dedup.local.near_duplicates_local` with `DedupConfig()` (removal only with direct evidence);
  * the old rule: the same verified LSH edges, every member of a connected component but its keep-rule
    winner removed (what tokenmill did before the evidence rule);
  * datasketch `MinHashLSH` (threshold 0.8, 128 permutations), documents in keep-rule order, each removed
    as a duplicate of the first kept document its LSH query returns, else inserted.
Reported per engine: recall of pairs with J >= 0.8 (both end in the same kept document; target >= 0.98),
the share of removals whose true J to their kept document is >= 0.8 (target >= 0.97) and >= 0.7 (target
>= 0.995), the largest cluster and the cluster-size distribution; and recall per Jaccard bin.

    .venv/bin/python -m benchmarks.dedup_quality [--docs 4000] [--seed 0] [--set tolerance=0.05]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
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

from dedup.components import connected_components, star_edges  # noqa: E402
from dedup.config import DedupConfig  # noqa: E402
from dedup.keep import keep_ranks, kept_members, parse_keep_rule  # noqa: E402
from dedup.local import near_duplicates_local  # noqa: E402
from dedup.lsh import band_keys, resolve_bands  # noqa: E402
from dedup.minhash import is_empty, minhash_signatures, signature_jaccard  # noqa: E402
from dedup.shingle import shingle_strings  # noqa: E402

EDIT_RATES = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)


def bundled_texts() -> dict[str, str]:
    """The real texts of data/sample/ (the same packages' text, bundled), one string per source file."""
    import pyarrow.parquet as pq

    sample = _HERE.parent / "data" / "sample"
    texts: dict[str, str] = {}
    for name in ("kjv.jsonl", "jargon.jsonl", "fortunes.jsonl.gz"):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(sample / name, "rt", encoding="utf-8", errors="replace") as fh:  # type: ignore[operator]
            rows = []
            for line in fh:
                try:
                    text = json.loads(line)["text"]
                except (ValueError, KeyError, TypeError):
                    continue  # the sample's planted malformed lines
                if isinstance(text, str):
                    rows.append(text)
        texts[name.split(".")[0]] = "\n".join(rows)
    texts["debref"] = "\n".join(pq.read_table(sample / "debian-reference.parquet", columns=["text"])["text"]
                                 .to_pylist())
    return texts


def source_texts() -> dict[str, str]:
    """The real texts installed by Debian packages, else the bundled sample's."""
    try:
        return package_texts()
    except SystemExit as exc:
        print(f"({exc}; using the texts bundled in data/sample/)")
        return bundled_texts()


def package_texts() -> dict[str, str]:
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


def jaccard_pairs(shingles: list[set[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, J) for every pair i < j with a shared shingle: exact Jaccard of the shingle sets."""
    from scipy import sparse

    docs = shingles
    ids: dict[str, int] = {}
    rows, cols = [], []
    for d, sset in enumerate(shingles):
        for sh in sset:
            rows.append(d)
            cols.append(ids.setdefault(sh, len(ids)))
    x = sparse.csr_matrix((np.ones(len(rows), np.float64), (rows, cols)), shape=(len(docs), len(ids)))
    sizes = np.asarray(x.sum(axis=1)).ravel()
    inter = sparse.triu(x @ x.T, k=1).tocoo()
    i, j, n = inter.row, inter.col, inter.data
    return i, j, n / (sizes[i] + sizes[j] - n)


def old_rule(table: pa.Table, cfg: DedupConfig) -> np.ndarray:
    """The rule before direct evidence: every member of a component of verified edges is a duplicate of the
    component's keep-rule winner. Returns the kept row of each row (rows in doc_id order)."""
    bands, rows = resolve_bands(cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.false_positive_weight,
                                cfg.false_negative_weight)
    sig = minhash_signatures(table["text"], num_perm=cfg.num_perm, ngram=cfg.ngram, mode=cfg.shingle, seed=cfg.seed)
    src, dst = star_edges(band_keys(sig, bands, rows), active=~is_empty(sig))
    ok = signature_jaccard(sig[src], sig[dst]) >= cfg.resolved_verify_threshold()
    labels = connected_components(len(sig), src[ok], dst[ok])
    return kept_members(labels, keep_ranks(table, parse_keep_rule(cfg.keep)))


def ours(table: pa.Table, cfg: DedupConfig) -> np.ndarray:
    result = near_duplicates_local(table.to_batches(max_chunksize=1000), cfg=cfg)
    index = {d: k for k, d in enumerate(table["doc_id"].to_pylist())}
    kept_of = np.arange(table.num_rows)
    kept_of[[index[d] for d in result["doc_id"].to_pylist()]] = [index[d] for d in result["kept_doc_id"].to_pylist()]
    return kept_of


def datasketch_lsh(table: pa.Table, cfg: DedupConfig, shingles: list[set[str]]) -> np.ndarray:
    """datasketch MinHashLSH at cfg.threshold: documents in keep-rule order, each a duplicate of the best
    kept document its query returns, else inserted (the library's usual dedup loop)."""
    from datasketch import MinHash, MinHashLSH

    hashes = MinHash.bulk([[s.encode() for s in sh] for sh in shingles], num_perm=cfg.num_perm, seed=cfg.seed)
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    ranks = keep_ranks(table, parse_keep_rule(cfg.keep))
    kept_of = np.arange(table.num_rows)
    for i in np.argsort(ranks).tolist():
        hits = lsh.query(hashes[i])
        if hits:
            kept_of[i] = min(hits, key=lambda k: ranks[k])
        else:
            lsh.insert(i, hashes[i])
    return kept_of


def measure(kept_of: np.ndarray, i: np.ndarray, j: np.ndarray, jac: np.ndarray) -> dict[str, object]:
    pair_j = dict(zip(zip(i.tolist(), j.tolist(), strict=True), jac.tolist(), strict=True))
    together = kept_of[i] == kept_of[j]
    is_kept = kept_of == np.arange(len(kept_of))
    hi = jac >= 0.8
    removed = np.nonzero(kept_of != np.arange(len(kept_of)))[0]
    truth = np.array([pair_j.get((min(r, k), max(r, k)), 0.0) for r, k in zip(removed, kept_of[removed], strict=True)])
    sizes = np.bincount(kept_of, minlength=len(kept_of))
    sizes = sizes[sizes >= 2]
    dist = {label: int(((sizes >= lo) & (sizes <= up)).sum())
            for label, lo, up in (("2", 2, 2), ("3", 3, 3), ("4-5", 4, 5), ("6-10", 6, 10), ("11-50", 11, 50),
                                  (">50", 51, 1 << 40))}
    return {
        "recall": (int(together[hi].sum()), int(hi.sum())),
        "caught": (int((~(is_kept[i] & is_kept[j]))[hi].sum()), int(hi.sum())),
        "removed": len(removed),
        "ge08": (int((truth >= 0.8).sum()), len(truth)),
        "ge07": (int((truth >= 0.7).sum()), len(truth)),
        "min": float(truth.min()) if len(truth) else float("nan"),
        "largest": int(sizes.max()) if len(sizes) else 1,
        "dist": " ".join(f"{k}:{v}" for k, v in dist.items() if v),
        "caught_mask": ~(is_kept[i] & is_kept[j]),
    }


def _ratio(pair: object) -> str:
    a, b = pair if isinstance(pair, tuple) else (0, 0)
    return f"{a / b:.4f} ({a}/{b})" if b else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=4000, help="base documents (before planted copies)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ours-only", action="store_true", help="skip the old rule and datasketch")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a DedupConfig field (VALUE parsed as YAML), e.g. --set tolerance=0.05")
    args = parser.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    cfg = DedupConfig(**overrides)

    t0 = time.perf_counter()
    docs, _ = planted_corpus(args.docs, args.seed)
    shingles = [set(shingle_strings(text, ngram=cfg.ngram)) for text in docs]
    i, j, jac = jaccard_pairs(shingles)
    rng = np.random.default_rng(args.seed + 1)
    table = pa.table({
        "doc_id": [f"d{k:07d}" for k in range(len(docs))],
        "text": docs,
        "quality_score": rng.random(len(docs)),
        "n_chars": np.array([len(d) for d in docs], dtype=np.int64),
    })
    print(f"corpus: {len(docs)} docs, {sum(map(len, docs)) / 1e6:.1f} MB, {len(jac)} pairs sharing a shingle, "
          f"{int((jac >= 0.8).sum())} with J >= 0.8; ground truth {time.perf_counter() - t0:.1f}s")
    bands, rows = resolve_bands(cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.false_positive_weight,
                                cfg.false_negative_weight)
    print(f"config: threshold={cfg.threshold} num_perm={cfg.num_perm} ngram={cfg.ngram} bands x rows={bands}x{rows} "
          f"verify={cfg.verify} edges >= {cfg.resolved_verify_threshold():.2f}, removal >= {cfg.removal_floor():.3f}"
          f"{' (overrides: ' + ' '.join(args.set) + ')' if args.set else ' (defaults)'}")
    engines = {"ours": lambda: ours(table, cfg), "old rule": lambda: old_rule(table, cfg),
               "datasketch MinHashLSH": lambda: datasketch_lsh(table, cfg, shingles)}
    if args.ours_only:
        engines = {"ours": engines["ours"]}
    results, seconds = {}, {}
    ours(table.slice(0, 200), cfg), old_rule(table.slice(0, 200), cfg)  # numba kernels load before timing
    for name, run in engines.items():
        t = time.perf_counter()
        results[name] = measure(run(), i, j, jac)
        seconds[name] = time.perf_counter() - t
    names = list(engines)
    print()
    print("| | " + " | ".join(names) + " | target |")
    print("|---" * (len(names) + 2) + "|")
    rows_out = [
        ("recall of pairs with J >= 0.8: not both kept", lambda r: _ratio(r["caught"]), ">= 0.98"),
        ("pairs with J >= 0.8 in one cluster", lambda r: _ratio(r["recall"]), ""),
        ("removals with true J >= 0.8 to the kept doc", lambda r: _ratio(r["ge08"]), ">= 0.97"),
        ("removals with true J >= 0.7 to the kept doc", lambda r: _ratio(r["ge07"]), ">= 0.995"),
        ("lowest true J of a removal", lambda r: f"{r['min']:.3f}", ""),
        ("documents removed", lambda r: f"{r['removed']}", ""),
        ("largest cluster", lambda r: f"{r['largest']}", ""),
        ("clusters by size", lambda r: r["dist"], ""),
    ]
    for label, fmt, target in rows_out:
        print(f"| {label} | " + " | ".join(fmt(results[n]) for n in names) + f" | {target} |")
    print("| seconds | " + " | ".join(f"{seconds[n]:.2f}" for n in names) + " | |")
    print("\nrecall (not both kept) per Jaccard bin (" + ", ".join(names) + "):")
    bins = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0001]
    for lo, up in zip(bins[:-1], bins[1:], strict=True):
        m = (jac >= lo) & (jac < up)
        if m.any():
            vals = ", ".join(f"{results[n]['caught_mask'][m].mean():.3f}" for n in names)  # type: ignore[index]
            print(f"  [{lo:.2f}, {min(up, 1.0):.2f}{']' if up > 1 else ')'}: {vals}  ({m.sum()} pairs)")


if __name__ == "__main__":
    main()
