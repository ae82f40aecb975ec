"""Fixtures of the versions tests: a lake builder and two successive corpora (see versions_lake.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from versions_lake import build_lake, doc

from pipelines.cli import main
from pipelines.config import Config


@pytest.fixture
def lake_builder() -> Callable[..., dict[str, int | None]]:
    return build_lake


@pytest.fixture
def first_docs() -> list[dict[str, Any]]:
    """Version 1: 8 raw docs from two files; 5 kept, 1 filtered, 2 near duplicates of d0."""
    return [
        doc("d0", uri="file:///data/a.jsonl", offset=0, n_words=40),
        doc("d1", uri="file:///data/a.jsonl", offset=1, n_words=60),
        doc("d2", uri="file:///data/a.jsonl", offset=2, n_words=80, language="de"),
        doc("d3", uri="file:///data/b.jsonl", offset=0, n_words=3, decision="filtered", reason="length"),
        doc("d4", uri="file:///data/b.jsonl", offset=1, n_words=40, decision="duplicate", reason="near",
            kept_doc_id="d0"),
        doc("d5", uri="file:///data/b.jsonl", offset=2, n_words=40, decision="duplicate", reason="exact",
            kept_doc_id="d0"),
        doc("d6", uri="file:///data/b.jsonl", offset=3, n_words=100, language="fr"),
        doc("d7", uri="file:///data/b.jsonl", offset=4, n_words=70),
    ]


@pytest.fixture
def second_docs(first_docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Version 2: d1 now filtered (length), d6 gone from the input, d8 and d9 new from c.jsonl."""
    docs = [d for d in first_docs if d["doc_id"] not in ("d1", "d6")]
    docs.insert(1, doc("d1", uri="file:///data/a.jsonl", offset=1, n_words=60, decision="filtered",
                       reason="length"))
    docs += [doc("d8", uri="file:///data/c.jsonl", offset=0, n_words=90),
             doc("d9", uri="file:///data/c.jsonl", offset=1, n_words=30, language="de")]
    return docs


@pytest.fixture
def cli(lake_config: Config, tmp_path: Path) -> Callable[..., int]:
    """Runs the tokenmill entry point with a params.yaml pointing at the test lake; returns the exit code."""
    params = tmp_path / "params.yaml"
    params.write_text(f"lake:\n  root: {lake_config.lake.root}\n")

    def run(*argv: str) -> int:
        return main([*argv, "--config", str(params)])

    return run
