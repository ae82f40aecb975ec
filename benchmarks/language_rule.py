"""How the `language` filter's rule treats English technical text and text in other languages.

    python -m benchmarks.language_rule [--per-group 150] [--seed 0]

English technical text: the Debian Reference sections of the bundled sample (data/sample), man pages
rendered from /usr/share/man (man1 and man8, through `man -l`), and plain-text READMEs under /usr/share/doc.
English prose: the sample's Jargon File entries and KJV chapters. Other languages: fortunes from Debian's
fortunes-* packages (bg, cs, de, eo, es, ga, it, pl, pt, ru, zh; install them with apt-get), grouped like
the sample's fortunes into documents of up to 6 fortunes or 1,600 characters. Groups whose files are
missing are reported and skipped. Every text is normalized as curate normalizes it.

For each rule it prints, per group, how many documents the filter keeps with `languages: [en]`: for the
English groups the share kept, for the others how many got through (they all should be dropped).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.filters.config import LanguageFilter
from pipelines.filters.language import detect_languages, language_scoring_text
from pipelines.filters.normalize import NormalizeConfig, normalize_text

ROOT = Path(__file__).resolve().parents[1]
FORTUNES = Path("/usr/share/games/fortunes")
FOREIGN = {"bg": ["bg"], "cs": ["cs"], "de": ["de"], "eo": ["eo"], "es": ["es"], "ga": ["ga"],
           "it": ["it", "italia", "formiche", "luttazzi", "definizioni", "leggi"], "pl": ["pl"],
           "pt": ["brasil"], "ru": ["ru"], "zh": ["chinese", "tang300", "song100"]}


def _fortune_files(names: list[str]) -> list[Path]:
    """The fortune files of ``names`` (files or folders), each as its non-empty UTF-8 copy (``.u8``) when
    the package ships one, else as itself."""
    out: list[Path] = []
    for name in names:
        p = FORTUNES / name
        files = sorted(p.iterdir()) if p.is_dir() else [p]
        for f in files:
            if f.suffix in (".dat", ".u8") or not f.is_file():
                continue
            u8 = f.with_name(f.name + ".u8")
            out.append(u8 if u8.exists() and u8.stat().st_size else f)
    return out


def _fortune_docs(files: list[Path]) -> list[str]:
    docs: list[str] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a legacy encoding without a .u8 copy
        group: list[str] = []
        for fortune in (x.strip() for x in text.split("\n%\n")):
            if not fortune:
                continue
            if group and (len(group) == 6 or sum(map(len, group)) + len(fortune) > 1600):
                docs.append("\n\n".join(group))
                group = []
            group.append(fortune)
        if group:
            docs.append("\n\n".join(group))
    return docs


def _man_pages(rng: random.Random, n: int) -> list[str]:
    pages = sorted(p for d in ("man1", "man8") for p in (Path("/usr/share/man") / d).glob("*.gz"))
    out: list[str] = []
    env = {**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0"}
    for p in rng.sample(pages, min(len(pages), 4 * n)):
        proc = subprocess.run(["man", "-l", str(p)], capture_output=True, text=True, env=env, timeout=30,
                              check=False)
        text = subprocess.run(["col", "-bx"], input=proc.stdout, capture_output=True, text=True,
                              check=False).stdout
        if proc.returncode == 0 and len(text.split()) >= 50:
            out.append(text)
        if len(out) == n:
            break
    return out


def _readmes(rng: random.Random, n: int) -> list[str]:
    files = sorted(p for p in Path("/usr/share/doc").glob("*/README*") if p.is_file())
    out: list[str] = []
    for p in rng.sample(files, len(files)):
        try:
            raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text.split()) >= 50:
            out.append(text)
        if len(out) == n:
            break
    return out


def _sample_docs(prefix: str) -> list[str]:
    if prefix == "debref-":
        rows = pq.read_table(ROOT / "data/sample/debian-reference.parquet", columns=["id", "text"]).to_pylist()
    else:
        path = ROOT / "data/sample" / ("jargon.jsonl" if prefix == "jargon-" else "kjv.jsonl")
        rows = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():  # planted bad bytes
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return [r["text"] for r in rows if isinstance(r, dict) and str(r.get("id", "")).startswith(prefix)
            and isinstance(r.get("text"), str) and len(r["text"].split()) >= 50]


def groups(per_group: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    out: dict[str, list[str]] = {
        "en debian-reference": _sample_docs("debref-"),
        "en man pages": _man_pages(rng, per_group),
        "en READMEs": _readmes(rng, per_group),
        "en jargon (prose)": rng.sample(_sample_docs("jargon-"), min(per_group, len(_sample_docs("jargon-")))),
        "en kjv (prose)": _sample_docs("kjv-")[:per_group],
    }
    for lang, names in FOREIGN.items():
        docs = _fortune_docs(_fortune_files(names))
        if not docs:
            print(f"skipped {lang}: no fortunes-{lang} files under {FORTUNES}")
            continue
        out[f"{lang} fortunes"] = rng.sample(docs, min(per_group, len(docs)))
    return out


Rule = Callable[[list[str]], np.ndarray]


def rule(min_score: float, prose_only: bool) -> Rule:
    spec = LanguageFilter()

    def keep(texts: list[str]) -> np.ndarray:
        scored: list[str | None] = [language_scoring_text(t, spec.max_input_chars) if prose_only else t for t in texts]
        langs, scores = detect_languages(scored, max_input_chars=spec.max_input_chars)
        return np.array([lang == "en" for lang in langs]) & (scores > min_score)

    return keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-group", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    norm = NormalizeConfig()
    data = {name: normalize_text(pa.array(docs, pa.string()), norm).to_pylist()
            for name, docs in groups(args.per_group, args.seed).items()}
    rules = {"whole text > 0.65 (before)": rule(0.65, False), "whole text > 0.30": rule(0.30, False),
             "prose lines > 0.65 (default)": rule(0.65, True), "prose lines > 0.50": rule(0.50, True),
             "prose lines > 0.30": rule(0.30, True)}
    print(f"{'group':<22} {'docs':>5} " + " ".join(f"{name:>28}" for name in rules))
    for name, docs in data.items():
        kept = [int(keep(docs).sum()) for keep in rules.values()]
        cells = " ".join(f"{k:>20} ({k / max(1, len(docs)):>5.1%})" for k in kept)
        print(f"{name:<22} {len(docs):>5} {cells}")


if __name__ == "__main__":
    main()
