"""SIGKILL inside each incremental stage (curate between its commits, tokenize and shard right before theirs),
then a re-run: counts conserve, and each kept document is in exactly one shard of every manifest, each
manifest listing the previous one's shards plus new ones."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import lake
from pipelines.config import Config, load_config
from pipelines.ops.audit import audit
from pipelines.stages import run_stage

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny" / "input"
CHILD = Path(__file__).with_name("stage_child.py")
REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


def killed_at(cfg: Config, stage: str, point: str, tmp: Path) -> None:
    """Run `stage` in a child process and check that it died by SIGKILL at `point`."""
    data = cfg.model_dump(mode="json")
    data["spark"] = {"master": "local[2]", "app_name": "tokenmill-crash",
                     "conf": {"spark.ui.showConsoleProgress": "false"}}
    path = tmp / f"config-{point}.json"
    path.write_text(json.dumps(data))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(CHILD), str(path), stage, point], cwd=REPO, capture_output=True,
                          timeout=600, text=True, env=env)
    assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}: {proc.stderr[-2000:]}"


def manifest_docs(uri: str) -> tuple[dict, list[str]]:
    """The manifest and the doc_id of every sample of its shards (read from the tars)."""
    import webdataset as wds

    path = Path(uri.removeprefix("file://"))
    manifest = json.loads(path.read_text())
    urls = [str(path.parent / s["path"]) for s in manifest["shards"]]
    return manifest, [json.loads(s["json"])["doc_id"] for s in wds.WebDataset(urls, shardshuffle=False)]


def _record(line: str) -> object:
    try:
        return json.loads(line)
    except ValueError:  # the tiny corpus plants malformed lines
        return None


def kept_ids(cfg: Config) -> list[str]:
    table = lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "doc_decisions")
    rows = lake.read_table(table, ("doc_id", "decision")).to_pylist()
    return sorted(r["doc_id"] for r in rows if r["decision"] == "kept")


def test_kill_inside_each_incremental_stage_then_rerun(spark, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(TINY / "docs-a.jsonl", folder)
    root = tmp_path / "lake"
    cfg = load_config(None, [
        f"lake.root={root}", f"lake.metrics_dir={root}/metrics", f"sources=[{{type: local, path: '{folder}'}}]",
        "curate.filters=[{name: length, min_words: 5, max_chars: 10000}]", f"tokenize.tokenizer={root}/tok.json",
        "tokenize.train.vocab_size=600", "shard.target_bytes=16384", "spark.master=local[2]",
    ])
    for stage in ("ingest", "curate", "train-tokenizer", "tokenize"):
        run_stage(stage, cfg, spark)
    manifests = [run_stage("shard", cfg, spark).outputs["manifest"]]
    again = [run_stage(stage, cfg, spark) for stage in ("ingest", "curate", "tokenize", "shard")]
    assert all(r.skipped for r in again[1:]) and again[-1].outputs["manifest"] == manifests[0]

    for new_file, stage, point in (("docs-b.jsonl.gz", "curate", "curate.between_commits"),
                                   ("docs-c.parquet", "tokenize", "tokenize.before_commit"),
                                   ("docs-d.jsonl", "shard", "shard.before_commit")):
        if new_file == "docs-d.jsonl":  # more new documents: docs-a's first records, words reversed, new ids
            rows = [_record(line) for line in (TINY / "docs-a.jsonl").read_text().splitlines()[:30]]
            (folder / new_file).write_text("".join(
                json.dumps({"id": f"rev-{r['id']}", "text": " ".join(reversed(str(r["text"]).split()))}) + "\n"
                for r in rows if isinstance(r, dict) and "id" in r and "text" in r))
        else:
            shutil.copy(TINY / new_file, folder)
        run_stage("ingest", cfg, spark)
        for before in ("curate", "tokenize")[: ("curate", "tokenize", "shard").index(stage)]:
            run_stage(before, cfg, spark)
        killed_at(cfg, stage, point, tmp_path)
        for rest in ("curate", "tokenize", "shard")[("curate", "tokenize", "shard").index(stage):]:
            report = run_stage(rest, cfg, spark)
            assert not report.skipped or rest == "curate", rest
        manifests.append(report.outputs["manifest"])
        result = audit(cfg)
        assert result.ok, [c for c in result.checks if not c.ok]

    previous: list[dict] = []
    for uri in manifests:
        manifest, docs = manifest_docs(uri)
        assert len(docs) == len(set(docs)) == manifest["n_samples"]  # each document in exactly one shard
        assert manifest["shards"][: len(previous)] == previous  # the earlier manifest's shards, then new ones
        previous = manifest["shards"]
    assert sorted(docs) == kept_ids(cfg)
    modes = {s: lake.last_summary(lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, t))
             .get("tokenmill.mode") for s, t in (("tokenize", "tokens"), ("shard", "shards"))}
    assert modes == {"tokenize": "incremental", "shard": "incremental"}
