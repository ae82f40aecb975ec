"""Rebuild data/sample/ (a few MB of real text with planted duplicates and junk) from Debian packages.

    .venv/bin/python data/build_sample.py            # writes data/sample/ and data/sample_manifest.json

Needs the packages bible-kjv-text, dict-jargon, fortunes, fortunes-min, fortunes-de, fortunes-es,
fortunes-it, fortunes-ru and debian-reference-en. Deterministic for given package versions: fixed seed,
no timestamps in the gzip header, records in a seeded order. The tiny test corpus is built by
data/build_tiny.py from the same readers.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import unicodedata
from pathlib import Path

import corpus_plant as cp
import corpus_sources as cs
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger("build_sample")

SEED = 20240501
HERE = Path(__file__).resolve().parent
PACKAGES = [
    "bible-kjv-text",
    "dict-jargon",
    "fortunes",
    "fortunes-min",
    "fortunes-de",
    "fortunes-es",
    "fortunes-it",
    "fortunes-ru",
    "debian-reference-en",
]
KJV_BOOKS = ["ge", "ruth", "2sm", "2ki", "1chr", "ezra", "neh", "psa", "isa", "jonah", "mat", "mark"]
LONG_BOOKS_FROM = "jer"  # the long document runs through the books from here on that the sample skips
LONG_MIN_CHARS = 1_050_000
FORTUNE_FILES = [
    "ascii-art",
    "computers",
    "cookie",
    "debian",
    "definitions",
    "disclaimer",
    "fortunes",
    "goedel",
    "linux",
    "linuxcookie",
    "literature",
    "magic",
    "medicine",
    "news",
    "paradoxum",
    "perl",
    "riddles",
    "science",
    "startrek",
    "tao",
    "wisdom",
]
FOREIGN = {"de": "de/sprichworte", "es": "es/filosofia.fortunes", "it": "it/formiche", "ru": "ru/2001.06"}
FOREIGN_DOCS = 5
NEAR_FRACTION, EXACT_FRACTION = 0.05, 0.02
NEAR_MIN_WORDS, NEAR_MIN_JACCARD = 200, 0.85
FILES = ["kjv.jsonl", "jargon.jsonl", "fortunes.jsonl.gz", "debian-reference.parquet"]
MALFORMED_FILE = "kjv.jsonl"


def natural_documents() -> dict[str, list[dict[str, str]]]:
    """The real documents per output file, before planting."""
    chapters = cs.kjv_chapters()
    book = lambda r: r["id"].split("-")[1]  # noqa: E731
    kjv = [r for r in chapters if book(r) in KJV_BOOKS]
    books = list(dict.fromkeys(book(r) for r in chapters))
    long_books = [b for b in books[books.index(LONG_BOOKS_FROM) :] if b not in KJV_BOOKS]
    fortunes = [
        d
        for name in FORTUNE_FILES
        for d in cs.fortune_documents(cs.FORTUNES_DIR / name, "fortune", "fortunes")
    ]
    return {
        "kjv.jsonl": kjv,
        "jargon.jsonl": cs.jargon_entries(),
        "fortunes.jsonl.gz": fortunes,
        "debian-reference.parquet": cs.debref_sections(),
        "_long_source": [r for r in chapters if book(r) in long_books],
    }


def long_document(chapters: list[dict[str, str]]) -> dict[str, str]:
    """One real but oversized document: whole chapters joined until it passes LONG_MIN_CHARS."""
    parts: list[str] = []
    total = 0
    for r in chapters:
        parts.append(f"{r['title']}\n{r['text']}")
        total += len(parts[-1]) + 2
        if total > LONG_MIN_CHARS:
            break
    if total <= LONG_MIN_CHARS:
        raise ValueError(f"long document reached only {total} chars")
    first, last = chapters[0]["title"], r["title"]
    return {
        "id": "junk-long-1",
        "text": "\n\n".join(parts),
        "source": "bible-kjv-text",
        "title": f"King James Version, {first} to {last}",
    }


def junk_documents() -> list[tuple[str, dict[str, str], str]]:
    """(file, record, kind) for the planted junk: empty, whitespace-only, very short, boilerplate, markup."""
    out: list[tuple[str, dict[str, str], str]] = []
    for i in range(3):
        out.append(("jargon.jsonl", {"id": f"junk-empty-{i + 1}", "text": ""}, "empty"))
    for i, t in enumerate(cp.WHITESPACE_ONLY):
        out.append(("jargon.jsonl", {"id": f"junk-ws-{i + 1}", "text": t}, "whitespace_only"))
    for i, t in enumerate(cp.VERY_SHORT):
        out.append(("fortunes.jsonl.gz", {"id": f"junk-short-{i + 1}", "text": t}, "too_short"))
    for i, t in enumerate(cp.BOILERPLATE):
        out.append(("debian-reference.parquet", {"id": f"junk-boiler-{i + 1}", "text": t}, "boilerplate"))
    for i, t in enumerate(cp.MARKUP):
        out.append(("kjv.jsonl", {"id": f"junk-markup-{i + 1}", "text": t}, "markup"))
    for _, rec, _ in out:
        rec.update(source="planted-junk", title="")
    return out


def foreign_documents() -> list[dict[str, str]]:
    """A few non-English fortune groups per language, ids `lang-<lang>-<n>`."""
    out = []
    for lang, rel in FOREIGN.items():
        docs = cs.fortune_documents(cs.FORTUNES_DIR / rel, "lang", f"fortunes-{lang}", max_chars=900)
        for i, d in enumerate(docs[:FOREIGN_DOCS]):
            out.append({**d, "id": f"lang-{lang}-{i + 1}"})
    return out


def plant_duplicates(
    natural: dict[str, list[dict[str, str]]], rng: np.random.Generator
) -> tuple[list[tuple[str, dict[str, str]]], dict, dict]:
    """Near copies (word runs deleted) of ~5% and exact copies of ~2% of the natural documents.

    Returns ([(file, copy)], near manifest, exact manifest). Copies land in a random file, so
    dedup must work across files; each original is copied at most once.
    """
    pool = [r for f in FILES for r in natural[f]]
    order = rng.permutation(len(pool))
    n_near, n_exact = round(NEAR_FRACTION * len(pool)), round(EXACT_FRACTION * len(pool))
    copies: list[tuple[str, dict[str, str]]] = []
    near: dict[str, dict] = {}
    exact: dict[str, dict] = {}
    for idx in order:
        orig = pool[int(idx)]
        n_words = len(orig["text"].split())
        if len(near) < n_near and n_words >= NEAR_MIN_WORDS:
            rate = float(rng.choice([0.01, 0.02, 0.03]))
            text, deleted = cp.delete_word_runs(orig["text"], rate, rng)
            j = cp.jaccard(orig["text"], text)
            if j < NEAR_MIN_JACCARD:
                text, deleted = cp.delete_word_runs(orig["text"], 0.01, rng)
                j = cp.jaccard(orig["text"], text)
            if j < NEAR_MIN_JACCARD:
                continue
            cid = f"zz-near-{orig['id']}"
            near[cid] = {
                "of": orig["id"],
                "words": n_words,
                "deleted_words": deleted,
                "jaccard5": round(j, 4),
            }
        elif len(exact) < n_exact and n_words >= 5:
            kind = cp.EXACT_VARIANTS[len(exact) % len(cp.EXACT_VARIANTS)]
            if kind == "nfd" and unicodedata.normalize("NFD", orig["text"]) == orig["text"]:
                kind = "double_spaces"
            text = cp.exact_variant(orig["text"], kind)
            cid = f"zz-exact-{orig['id']}"
            exact[cid] = {"of": orig["id"], "variant": kind}
        else:
            if len(near) >= n_near and len(exact) >= n_exact:
                break
            continue
        copies.append((FILES[int(rng.integers(len(FILES)))], {**orig, "id": cid, "text": text}))
    return copies, near, exact


def write_jsonl(path: Path, lines: list[bytes], *, gz: bool) -> None:
    blob = b"".join(line + b"\n" for line in lines)
    if gz:
        with path.open("wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as z:
            z.write(blob)
    else:
        path.write_bytes(blob)


def write_parquet(path: Path, records: list[dict[str, str]]) -> None:
    cols = {k: pa.array([r[k] for r in records], pa.string()) for k in ("id", "text", "source", "title")}
    pq.write_table(pa.table(cols), path, compression="zstd")


def build(out_dir: Path, manifest_path: Path) -> dict:
    rng = np.random.default_rng(SEED)
    natural = natural_documents()
    long_doc = long_document(natural.pop("_long_source"))
    per_file: dict[str, list[dict[str, str]]] = {f: list(natural[f]) for f in FILES}
    copies, near, exact = plant_duplicates(natural, rng)
    for f, rec in copies:
        per_file[f].append(rec)
    junk = junk_documents()
    for f, rec, _ in junk:
        per_file[f].append(rec)
    foreign = foreign_documents()
    per_file["fortunes.jsonl.gz"] += foreign + [long_doc]

    ids = [r["id"] for recs in per_file.values() for r in recs]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate ids in the sample")
    out_dir.mkdir(parents=True, exist_ok=True)
    files_meta: dict[str, dict] = {}
    malformed: list[dict] = []
    for f in FILES:
        recs = [per_file[f][int(i)] for i in rng.permutation(len(per_file[f]))]
        path = out_dir / f
        if f.endswith(".parquet"):
            write_parquet(path, recs)
            n_records = len(recs)
        else:
            lines = [cp.jsonl_line(r) for r in recs]
            if f == MALFORMED_FILE:
                for k, kind in enumerate(cp.MALFORMED_KINDS):
                    at = int(rng.integers(len(lines)))
                    lines.insert(at, cp.malformed_line(kind, f"bad-{kind.replace('_', '-')}-{k + 1}", f))
                malformed = [
                    {"file": f, "line": i + 1, "kind": kind}
                    for i, line in enumerate(lines)
                    for kind in cp.MALFORMED_KINDS
                    if f"bad-{kind.replace('_', '-')}".encode() in line
                ]
            write_jsonl(path, lines, gz=f.endswith(".gz"))
            n_records = len(lines)
        files_meta[f] = {
            "records": n_records,
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }

    texts = {r["id"]: r["text"] for f in FILES for r in natural[f]}
    by_norm: dict[str, list[str]] = {}
    for k, t in texts.items():
        by_norm.setdefault(cp.normalize_for_check(t), []).append(k)
    manifest = {
        "seed": SEED,
        "packages": {p: cs.package_version(p) for p in PACKAGES},
        "files": files_meta,
        "total_records": sum(m["records"] for m in files_meta.values()),
        "valid_records": sum(m["records"] for m in files_meta.values()) - len(malformed),
        "natural_documents": {f: len(natural[f]) for f in FILES},
        "planted": {
            "near_duplicates": near,
            "exact_duplicates": exact,
            "junk": {rec["id"]: kind for _, rec, kind in junk},
            "non_english": {r["id"]: r["source"].removeprefix("fortunes-") for r in foreign},
            "long": {long_doc["id"]: len(long_doc["text"])},
            "malformed_lines": malformed,
        },
        "natural_duplicates": {
            "exact_groups": sorted(sorted(v) for v in by_norm.values() if len(v) > 1),
            "near_pairs_jaccard5_ge_0.5": cp.near_pairs(texts, 0.5),
        },
    }
    manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "sample")
    ap.add_argument("--manifest", type=Path, default=HERE / "sample_manifest.json")
    args = ap.parse_args()
    m = build(args.out, args.manifest)
    p = m["planted"]
    log.info("files: %s", {f: (v["records"], v["bytes"]) for f, v in m["files"].items()})
    log.info(
        "total records %d (valid %d); near %d, exact %d, junk %d, non-English %d, malformed %d",
        m["total_records"],
        m["valid_records"],
        len(p["near_duplicates"]),
        len(p["exact_duplicates"]),
        len(p["junk"]),
        len(p["non_english"]),
        len(p["malformed_lines"]),
    )
    nd = m["natural_duplicates"]
    log.info(
        "natural exact groups %d, natural near pairs (J5 >= 0.8) %d",
        len(nd["exact_groups"]),
        sum(j >= 0.8 for _, _, j in nd["near_pairs_jaccard5_ge_0.5"]),
    )


if __name__ == "__main__":
    main()
