"""Rebuild parity_corpus.jsonl from Debian text packages (see README.md). Not run by the tests.

    apt-get install bible-kjv bible-kjv-text dict-jargon fortunes fortunes-de fortunes-es fortunes-it \
        fortunes-ru debian-reference-en
    python tests/unit/filters/data/build_corpus.py
"""

from __future__ import annotations

import gzip
import html
import json
import random
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
FORTUNES = Path("/usr/share/games/fortunes")
rng = random.Random(20240601)


def fortunes(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [f.strip("\n") for f in text.split("\n%\n") if f.strip()]


def bible_passages(n: int) -> list[str]:
    books = ["Gen", "Exo", "Lev", "Deu", "Jos", "Rut", "1Sa", "Job", "Psa", "Pro", "Ecc", "Isa", "Jer", "Eze",
             "Dan", "Mat", "Mar", "Luk", "Joh", "Act", "Rom", "1Co", "Heb", "Jam", "Rev"]  # fmt: skip
    out = []
    for _ in range(n):
        book, chapter = rng.choice(books), rng.randint(1, 10)
        first = rng.randint(1, 12)
        last = first + rng.choice([2, 5, 8, 12])
        flag = ["-f"] if rng.random() < 0.5 else []
        res = subprocess.run(
            ["bible", *flag, f"{book}{chapter}:{first}-{last}"], capture_output=True, text=True
        )
        if res.returncode == 0 and res.stdout.strip():
            out.append(res.stdout.strip("\n"))
    return out


def jargon_entries(n: int) -> list[str]:
    raw = gzip.open("/usr/share/dictd/jargon.dict.dz", "rt", encoding="utf-8", errors="replace").read()
    entries = [e.strip("\n") for e in re.split(r"\n\n(?=\S)", raw) if len(e) > 40]
    return rng.sample(entries, n)


def debian_reference(n: int) -> list[str]:
    docs = []
    for page in sorted(Path("/usr/share/debian-reference").glob("ch*.en.html")):
        body = page.read_text(encoding="utf-8", errors="replace")
        body = re.sub(r"(?s)<(script|style)\b.*?</\1>", "", body)
        for section in re.split(r"<h[23][^>]*>", body)[1:]:
            text = re.sub(r"<br\s*/?>|</(p|div|li|tr|pre|h\d)>", "\n", section)
            text = html.unescape(re.sub(r"<[^>]+>", "", text))
            text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
            if len(text) > 80:
                docs.append(text[:1500])
    return rng.sample(docs, min(n, len(docs)))


def main() -> None:
    docs: list[dict] = []

    def add(source: str, texts: list[str]) -> None:
        for t in texts:
            docs.append({"id": f"{source}-{len(docs):04d}", "source": source, "text": t})

    english = sorted(p for p in FORTUNES.iterdir() if p.is_file() and "." not in p.name)
    singles = [f for p in english for f in fortunes(p)]
    add("fortunes", rng.sample(singles, 220))
    groups = []
    for _ in range(50):
        start = rng.randrange(len(singles) - 10)
        groups.append("\n\n".join(singles[start : start + rng.randint(3, 10)]))
    add("fortunes-group", groups)
    add("bible-kjv", bible_passages(110))
    add("jargon", jargon_entries(140))
    add("debian-reference", debian_reference(70))
    for lang, sub in (("de", "de"), ("es", "es"), ("it", "it"), ("ru", "ru")):
        files = sorted(
            p for p in (FORTUNES / sub).iterdir() if p.is_file() and not p.name.endswith((".dat", ".u8"))
        )
        pool = [f for p in files for f in fortunes(p)]
        add(f"fortunes-{lang}", rng.sample(pool, 15))
    with open(HERE / "parity_corpus.jsonl", "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
