"""Stage ordering of `tokenmill run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import stages
from pipelines.config import load_config
from pipelines.stages.report import StageReport


@pytest.mark.parametrize("tokenizer_exists", [False, True])
def test_run_trains_a_tokenizer_only_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  tokenizer_exists: bool) -> None:
    tok = tmp_path / "tokenizer.json"
    if tokenizer_exists:
        tok.write_text("{}")
    cfg = load_config(None, [f"lake.root={tmp_path}", f"tokenize.tokenizer={tok}"])
    ran: list[str] = []
    monkeypatch.setattr(stages, "run_stage", lambda name, cfg, spark: ran.append(name) or StageReport(stage=name))
    reports = stages.run_pipeline(cfg, spark=object())  # type: ignore[arg-type]
    expected = ["ingest", "curate", "tokenize", "shard"] if tokenizer_exists else \
        ["ingest", "curate", "train-tokenizer", "tokenize", "shard"]
    assert ran == expected and [r.stage for r in reports] == expected
