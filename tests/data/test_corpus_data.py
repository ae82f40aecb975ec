"""The committed sample and tiny corpora agree with their manifests (no Spark, no packages needed)."""

from __future__ import annotations

import gzip
import json
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
TINY = ROOT / "tests" / "data" / "tiny"


def read_records(folder: Path) -> tuple[dict[str, str], list[tuple[str, int]], int]:
    """(id -> text of valid records, [(file, line)] of invalid JSONL lines, total records)."""
    texts: dict[str, str] = {}
    bad: list[tuple[str, int]] = []
    total = 0
    for path in sorted(folder.iterdir()):
        if path.suffix == ".parquet":
            rows = pq.read_table(path).to_pylist()
            total += len(rows)
            for r in rows:
                assert r["id"] not in texts
                texts[r["id"]] = r["text"]
            continue
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        lines = raw.split(b"\n")
        assert lines[-1] == b""
        for i, line in enumerate(lines[:-1]):
            total += 1
            try:
                obj = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                bad.append((path.name, i + 1))
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                bad.append((path.name, i + 1))
                continue
            assert set(obj) == {"id", "text", "source", "title"}
            assert obj["id"] not in texts
            texts[obj["id"]] = obj["text"]
    return texts, bad, total


def norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def test_tiny_matches_expected() -> None:
    e = json.loads((TINY / "expected.json").read_text())
    texts, bad, total = read_records(TINY / "input")
    assert total == e["total_lines"] == 66
    assert len(texts) == e["raw_docs"] == 63
    assert bad == [(m["file"], m["line"]) for m in e["malformed"]] and len(bad) == e["malformed_lines"] == 3
    for copy, orig in e["exact_duplicates"].items():
        assert orig < copy and norm(texts[copy]) == norm(texts[orig])
    for copy, orig in e["near_duplicates"].items():
        assert orig < copy and len(texts[copy]) < len(texts[orig]) and len(texts[orig].split()) >= 200
    assert texts["tiny-empty-1"] == "" and all(not texts[k].strip() for k in e["empty"])
    assert all(0 < len(texts[k].split()) < 5 for k in e["too_short"])
    assert (
        len(texts["tiny-long-1"])
        > e["max_chars_for_test"]
        > max(len(t) for k, t in texts.items() if k != "tiny-long-1")
    )
    removed = set(e["exact_duplicates"]) | set(e["near_duplicates"]) | set(e["empty"]) | set(e["too_short"])
    assert set(e["kept_after_length_and_dedup"]) == set(texts) - removed - {"tiny-long-1"}
    assert sum(p.stat().st_size for p in (TINY / "input").iterdir()) < 100_000


def test_sample_matches_manifest() -> None:
    m = json.loads((ROOT / "data" / "sample_manifest.json").read_text())
    texts, bad, total = read_records(SAMPLE)
    assert total == m["total_records"] and len(texts) == m["valid_records"]
    assert bad == sorted((b["file"], b["line"]) for b in m["planted"]["malformed_lines"])
    assert 3_000_000 <= sum(p.stat().st_size for p in SAMPLE.iterdir()) <= 6_000_000
    planted = m["planted"]
    assert len(planted["near_duplicates"]) >= 0.04 * len(texts)
    for copy, info in planted["near_duplicates"].items():
        assert info["of"] < copy and len(texts[copy]) < len(texts[info["of"]])
    for copy, info in planted["exact_duplicates"].items():
        assert info["of"] < copy and norm(texts[copy]) == norm(texts[info["of"]])
    assert all(len(texts[k]) > 1_000_000 for k in planted["long"])
    kinds = planted["junk"]
    assert all(not texts[k].strip() for k, v in kinds.items() if v in ("empty", "whitespace_only"))
    assert all(len(texts[k].split()) < 5 for k, v in kinds.items() if v == "too_short")


@pytest.mark.slow
def test_builds_reproduce_committed_bytes(tmp_path: Path) -> None:
    """Rebuilding from the Debian packages gives the committed files, byte for byte."""
    import sys

    sys.path.insert(0, str(ROOT / "data"))
    try:
        import build_sample
        import build_tiny
    except ImportError as exc:  # pragma: no cover
        pytest.fail(f"build scripts not importable: {exc}")
    try:
        build_sample.build(tmp_path / "sample", tmp_path / "manifest.json")
        build_tiny.build(tmp_path / "tiny")
    except FileNotFoundError as exc:
        pytest.fail(f"the rebuild needs Debian's bible-kjv-text, dict-jargon, fortunes* and debian-reference-en "
                    f"packages: {exc}")
    for p in SAMPLE.iterdir():
        assert (tmp_path / "sample" / p.name).read_bytes() == p.read_bytes(), p.name
    for p in (TINY / "input").iterdir():
        assert (tmp_path / "tiny" / "input" / p.name).read_bytes() == p.read_bytes(), p.name
    assert (tmp_path / "tiny" / "expected.json").read_text() == (TINY / "expected.json").read_text()
