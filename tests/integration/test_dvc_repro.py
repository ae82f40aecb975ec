"""`dvc repro` runs the stages of dvc.yaml, and a second `dvc repro` does nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_dvc_repro_builds_then_is_up_to_date(tmp_path: Path) -> None:
    dvc = Path(sys.executable).parent / "dvc"
    work = tmp_path / "project"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if rel.startswith(("metrics/", "dvc.lock")):
            continue
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["sources"] = [{"type": "local", "path": "tests/data/tiny/input"}]
    params["spark"] = {"master": "local[2]"}
    params["tokenize"]["train"]["vocab_size"] = 600
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"]):
        assert _run(cmd, work, env).returncode == 0
    first = _run([str(dvc), "repro"], work, env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    for stage in ("ingest", "curate", "train-tokenizer", "tokenize", "shard"):
        assert f"Running stage '{stage}'" in first.stdout
    shard_metrics = json.loads((work / "metrics" / "shard.json").read_text())
    assert shard_metrics["counts"]["samples"] == json.loads((work / "metrics" / "curate.json").read_text())["counts"]["kept"]
    assert (work / "lake" / "pointers" / "shard.json").exists()
    second = _run([str(dvc), "repro"], work, env)
    assert second.returncode == 0
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date" in second.stdout
    shown = _run([str(dvc), "metrics", "show", "--json"], work, env)
    assert shown.returncode == 0 and "metrics/curate.json" in shown.stdout
