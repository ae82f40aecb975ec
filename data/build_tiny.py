"""Rebuild tests/data/tiny/ (about 70 documents, under 100 KB) with an exact list of expected decisions.

    .venv/bin/python data/build_tiny.py

Writes tests/data/tiny/input/{docs-a.jsonl, docs-b.jsonl.gz, docs-c.parquet}, expected.json and
README.md. The build checks its own oracle: natural documents share no 5-word-shingle Jaccard of 0.5
or more and no normalized text, near copies stay at Jaccard >= 0.85, exact copies normalize to their
originals. It fails (ValueError) rather than write a corpus whose expected.json could be wrong.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from pathlib import Path

import corpus_plant as cp
import corpus_sources as cs
import numpy as np
from build_sample import write_jsonl, write_parquet

log = logging.getLogger("build_tiny")

SEED = 7
HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "tests" / "data" / "tiny"
KJV_IDS = [
    "kjv-jonah-001",
    "kjv-jonah-002",
    "kjv-jonah-003",
    "kjv-jonah-004",
    "kjv-psa-001",
    "kjv-psa-023",
    "kjv-psa-100",
    "kjv-psa-121",
    "kjv-psa-133",
    "kjv-ruth-001",
]
N_JARGON, N_FORTUNE, N_DEBREF = 18, 10, 8
NEAR_RATE, N_NEAR, N_EXACT = 0.02, 4, 3
MAX_CHARS_FOR_TEST = (
    10_000  # the e2e test sets curate.filters[0].max_chars to this; only tiny-long-1 passes it
)
FILES = ["docs-a.jsonl", "docs-b.jsonl.gz", "docs-c.parquet"]
MALFORMED = ["truncated_json", "text_not_string", "missing_text"]


def pick(rng: np.random.Generator, records: list[dict[str, str]], n: int, lo: int, hi: int) -> list[dict]:
    """n records (in source order) with lo..hi words and at most 5,000 characters."""
    ok = [r for r in records if lo <= len(r["text"].split()) <= hi and len(r["text"]) <= 5000]
    idx = sorted(rng.choice(len(ok), size=n, replace=False))
    return [ok[int(i)] for i in idx]


def natural_documents(rng: np.random.Generator) -> dict[str, list[dict[str, str]]]:
    kjv = {r["id"]: r for r in cs.kjv_chapters()}
    genesis = [r for r in kjv.values() if r["id"].startswith("kjv-ge-")]
    parts, total = [], 0
    for r in genesis:
        parts.append(f"{r['title']}\n{r['text']}")
        total += len(parts[-1]) + 2
        if total >= 19_000:
            break
    long_doc = {
        "id": "tiny-long-1",
        "text": "\n\n".join(parts),
        "source": "bible-kjv-text",
        "title": f"Genesis 1 to {r['title']}",
    }
    fortunes = [
        d
        for name in ("tao", "fortunes")
        for d in cs.fortune_documents(cs.FORTUNES_DIR / name, "fortune", "fortunes")
    ]
    jargon = cs.jargon_entries()
    accented = [r for r in jargon if unicodedata.normalize("NFD", r["text"]) != r["text"]]
    jargon_pick = pick(rng, [r for r in jargon if r not in accented], N_JARGON - 1, 30, 300)
    jargon_pick += pick(rng, accented, 1, 30, 300)
    foreign = []
    for lang, rel in (("de", "de/sprichworte"), ("es", "es/filosofia.fortunes")):
        d = cs.fortune_documents(cs.FORTUNES_DIR / rel, "lang", f"fortunes-{lang}", max_chars=900)[0]
        foreign.append({**d, "id": f"tiny-lang-{lang}-1"})
    junk = [
        {"id": "tiny-boiler-1", "text": cp.BOILERPLATE[0], "source": "planted-junk", "title": ""},
        {"id": "tiny-markup-1", "text": cp.MARKUP[0], "source": "planted-junk", "title": ""},
    ]
    return {
        "docs-a.jsonl": [kjv[i] for i in KJV_IDS] + jargon_pick,
        "docs-b.jsonl.gz": pick(rng, fortunes, N_FORTUNE, 20, 400) + foreign + [long_doc],
        "docs-c.parquet": pick(rng, cs.debref_sections(), N_DEBREF, 150, 700) + junk,
    }


def check_natural(docs: list[dict[str, str]]) -> None:
    """Fail unless the natural documents are free of accidental duplicates and length edge cases."""
    norm = [cp.normalize_for_check(d["text"]) for d in docs]
    if len(set(norm)) != len(norm):
        raise ValueError("natural tiny documents contain an exact duplicate")
    pairs = cp.near_pairs({d["id"]: d["text"] for d in docs}, 0.5, sample_mod=1)
    if pairs:
        raise ValueError(f"natural tiny documents contain near duplicates: {pairs}")
    for d in docs:
        n_words, n_chars = len(d["text"].split()), len(d["text"])
        if n_words < 5 or (n_chars > 8000) != (d["id"] == "tiny-long-1"):
            raise ValueError(f"{d['id']}: {n_words} words, {n_chars} chars breaks the length plan")


def build(out: Path = OUT) -> dict:
    rng = np.random.default_rng(SEED)
    per_file = natural_documents(rng)
    natural = [d for f in FILES for d in per_file[f]]
    check_natural(natural)
    home = {d["id"]: f for f in FILES for d in per_file[f]}

    eligible = [d for d in natural if len(d["text"].split()) >= 200 and d["id"] != "tiny-long-1"]
    chosen = [eligible[int(i)] for i in rng.choice(len(eligible), size=N_NEAR, replace=False)]
    near: dict[str, str] = {}
    jac: dict[str, float] = {}
    for orig in chosen:
        text, _ = cp.delete_word_runs(orig["text"], NEAR_RATE, rng)
        jac[f"zz-near-{orig['id']}"] = j = round(cp.jaccard(orig["text"], text), 3)
        if j < 0.85 or len(text) >= len(orig["text"]):
            raise ValueError(f"near copy of {orig['id']} is not a clear near duplicate")
        cid = f"zz-near-{orig['id']}"
        near[cid] = orig["id"]
        per_file[FILES[(FILES.index(home[orig["id"]]) + 1) % 3]].append({**orig, "id": cid, "text": text})

    accented = next(
        d
        for d in natural
        if unicodedata.normalize("NFD", d["text"]) != d["text"]
        and d["id"] not in near.values()
        and d["source"] == "dict-jargon"
    )
    rest = [
        d
        for d in natural
        if d["id"] not in near.values()
        and d is not accented
        and d["id"] != "tiny-long-1"
        and d["source"] not in ("planted-junk", "fortunes-de", "fortunes-es")
    ]
    exact_src = [
        (rest[int(i)], kind)
        for i, kind in zip(rng.choice(len(rest), 2, replace=False), ["same", "double_spaces"], strict=True)
    ]
    exact_src.append((accented, "nfd"))
    exact: dict[str, str] = {}
    variants: dict[str, str] = {}
    for orig, kind in exact_src:
        cid = f"zz-exact-{orig['id']}"
        text = cp.exact_variant(orig["text"], kind)
        if cp.normalize_for_check(text) != cp.normalize_for_check(orig["text"]):
            raise ValueError(f"exact copy {cid} does not normalize to its original")
        exact[cid], variants[cid] = orig["id"], kind
        per_file[FILES[(FILES.index(home[orig["id"]]) + 2) % 3]].append({**orig, "id": cid, "text": text})

    empties = [{"id": "tiny-empty-1", "text": ""}, {"id": "tiny-empty-2", "text": "  \n\t  "}]
    shorts = [
        {"id": f"tiny-short-{i + 1}", "text": t}
        for i, t in enumerate(["Thanks!", "See above.", "Page 2 of 7"])
    ]
    for rec in empties + shorts:
        per_file["docs-a.jsonl"].append({**rec, "source": "planted-junk", "title": ""})

    out_in = out / "input"
    out_in.mkdir(parents=True, exist_ok=True)
    records: dict[str, int] = {}
    for f in FILES:
        recs = [per_file[f][int(i)] for i in rng.permutation(len(per_file[f]))]
        if f.endswith(".parquet"):
            write_parquet(out_in / f, recs)
        else:
            lines = [cp.jsonl_line(r) for r in recs]
            if f == "docs-a.jsonl":
                for k, kind in enumerate(MALFORMED):
                    lines.insert(5 + 7 * k, cp.malformed_line(kind, f"tiny-bad-{k + 1}", f))
            write_jsonl(out_in / f, lines, gz=f.endswith(".gz"))
        records[f] = len(recs) + (len(MALFORMED) if f == "docs-a.jsonl" else 0)

    all_ids = sorted(r["id"] for f in FILES for r in per_file[f])
    if len(all_ids) != len(set(all_ids)):
        raise ValueError("duplicate ids in the tiny corpus")
    removed = set(exact) | set(near) | {"tiny-empty-1", "tiny-empty-2", "tiny-long-1"}
    removed |= {r["id"] for r in shorts}
    expected = {
        "exact_duplicates": exact,
        "exact_duplicate_variants": variants,
        "near_duplicates": near,
        "near_duplicate_jaccard5": jac,
        "empty": ["tiny-empty-1", "tiny-empty-2"],
        "whitespace_only": ["tiny-empty-2"],
        "too_short": [r["id"] for r in shorts],
        "long": ["tiny-long-1"],
        "max_chars_for_test": MAX_CHARS_FOR_TEST,
        "non_english": ["tiny-lang-de-1", "tiny-lang-es-1"],
        "boilerplate": ["tiny-boiler-1", "tiny-markup-1"],
        "malformed_lines": len(MALFORMED),
        "malformed": [
            {"file": "docs-a.jsonl", "line": 6 + 7 * k, "kind": kind} for k, kind in enumerate(MALFORMED)
        ],
        "total_lines": sum(records.values()),
        "files": records,
        "raw_docs": len(all_ids),
        "kept_after_length_and_dedup": sorted(set(all_ids) - removed),
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")
    (out / "README.md").write_text(readme(expected), encoding="utf-8")
    size = sum(p.stat().st_size for p in out_in.iterdir())
    if size >= 100_000:
        raise ValueError(f"tiny corpus is {size} bytes, over 100 KB")
    log.info("tiny: %d records in %d bytes, expected.json written", expected["total_lines"], size)
    return expected


def readme(e: dict) -> str:
    """The human-readable twin of expected.json."""
    pairs = lambda d: "\n".join(f"- `{k}` copies `{v}`" for k, v in d.items())  # noqa: E731
    ids = lambda xs: ", ".join(f"`{x}`" for x in xs)  # noqa: E731
    variants = ", ".join(f"`{k}`: {v}" for k, v in e["exact_duplicate_variants"].items())
    bad = "\n".join(f"- {m['file']} line {m['line']}: {m['kind']}" for m in e["malformed"])
    return f"""# Tiny test corpus

Generated by `data/build_tiny.py` (seed {SEED}) from the same Debian packages as `data/sample/`
(see `data/README.md` for origins and licences). Do not edit by hand: rerun the script.
`expected.json` holds everything below in machine-readable form.

Input files (under `input/`, so the README and expected.json are not ingested):
{chr(10).join(f"- `{k}`: {v} records" for k, v in e["files"].items())}

Total input records: {e["total_lines"]} (JSONL lines + Parquet rows) = {e["raw_docs"]} valid documents
+ {e["malformed_lines"]} malformed lines.

## Expected decisions

Exact duplicates (textually identical after NFC + whitespace collapsing; the original has the smaller id):
{pairs(e["exact_duplicates"])}

Variants: {variants}.

Near duplicates (runs of words deleted, {NEAR_RATE:.0%} of the words, originals have >= 200 words;
Jaccard of 5-word shingles {min(e["near_duplicate_jaccard5"].values())}-{max(e["near_duplicate_jaccard5"].values())}; the copy is shorter and has the larger id):
{pairs(e["near_duplicates"])}

Empty: {ids(e["empty"])} (`tiny-empty-2` is whitespace only: empty after normalization).

Too short (< 5 words): {ids(e["too_short"])}.

Long: {ids(e["long"])} (about 19,500 chars of Genesis). It is not over the default `max_chars`;
the end-to-end test sets `max_chars` to {e["max_chars_for_test"]:,}. Every other document has under 8,000 chars.

Malformed lines ({e["malformed_lines"]}):
{bad}

Kept by a length filter (min_words 5, max_chars {e["max_chars_for_test"]:,}) and exact + near dedup
(threshold 0.8): the {len(e["kept_after_length_and_dedup"])} ids in `kept_after_length_and_dedup`.

Informational (kept by the length filter; other filters may drop them): non-English
{ids(e["non_english"])}; boilerplate / markup {ids(e["boilerplate"])}.

The build verifies its own claims: no two natural documents reach a 5-word-shingle Jaccard of 0.5 or
share a normalized text, every near copy stays >= 0.85 from its original, every exact copy normalizes
to its original, and the input stays under 100 KB.
"""


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build()
