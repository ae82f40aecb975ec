"""`dvc repro` runs the stages of dvc.yaml, and a second `dvc repro` does nothing; importing the code leaves
the dependency hashes alone; the committed dvc.lock matches the committed code; changing curate params
re-runs curate and what follows it, not ingest; changing a dedup budget re-runs curate alone, which commits nothing."""

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


def _project(tmp_path: Path, *, with_lock: bool = False) -> tuple[Path, dict[str, str]]:
    """A git repository holding the committed files (dvc.lock and metrics only `with_lock`)."""
    work = tmp_path / "project"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if not with_lock and rel.startswith(("metrics/", "dvc.lock")):
            continue
        if not (REPO / rel).exists():
            continue  # deleted in the working tree
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(work)}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"]):
        assert _run(cmd, work, env).returncode == 0
    return work, env


def _tiny_params(work: Path) -> None:
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["sources"] = [{"type": "local", "path": "tests/data/tiny/input"}]
    params["spark"] = {"master": "local[2]"}
    params["tokenize"]["train"]["vocab_size"] = 600
    (work / "params.yaml").write_text(yaml.safe_dump(params))


def _repro(work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = _run([str(Path(sys.executable).parent / "dvc"), "repro"], work, env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def test_dvc_repro_builds_then_is_up_to_date(tmp_path: Path) -> None:
    dvc = Path(sys.executable).parent / "dvc"
    work, env = _project(tmp_path)
    _tiny_params(work)
    first = _repro(work, env)
    for stage in ("ingest", "curate", "train-tokenizer", "tokenize", "shard"):
        assert f"Running stage '{stage}'" in first.stdout
    shard_metrics = json.loads((work / "metrics" / "shard.json").read_text())
    assert shard_metrics["counts"]["samples"] == json.loads((work / "metrics" / "curate.json").read_text())["counts"]["kept"]
    pointer = json.loads((work / "lake" / "pointers" / "shard.json").read_text())
    assert Path(pointer["outputs"]["manifest"]).name.startswith("manifest-")
    # importing every module writes byte code next to the sources: no dependency hash may see it
    imported = _run([sys.executable, "-c", "import compileall, sys; sys.exit(not compileall.compile_dir("
                     "'.', quiet=1, rx=__import__('re').compile(r'/(lake|tests/data)/')))"], work, env)
    assert imported.returncode == 0 and list(work.glob("pipelines/__pycache__/*.pyc"))
    second = _repro(work, env)
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date" in second.stdout
    shown = _run([str(dvc), "metrics", "show", "--json"], work, env)
    assert shown.returncode == 0 and "metrics/curate.json" in shown.stdout


def test_committed_lock_matches_the_committed_code(tmp_path: Path) -> None:
    """On a clean checkout only the lake (not in git) is missing: no code dependency, param or command
    differs from what dvc.lock recorded. After changing a stage's code run .ci/dvc-lock and commit."""
    work, env = _project(tmp_path, with_lock=True)
    proc = _run([str(Path(sys.executable).parent / "dvc"), "status", "--json"], work, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status = json.loads(proc.stdout or "{}")
    stale = {}
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):
                stale.setdefault(stage, []).append(change)  # "changed command", "always changed"
                continue
            for kind, paths in change.items():
                if kind == "changed deps":
                    code = {p: s for p, s in paths.items() if not p.startswith("lake/")}
                    if code:
                        stale.setdefault(stage, []).append(code)
                elif kind != "changed outs":
                    stale.setdefault(stage, []).append({kind: paths})
    assert not stale, f"dvc.lock is stale (regenerate it with .ci/dvc-lock): {stale}"


@pytest.mark.slow
def test_changed_curate_params_rerun_curate_and_downstream_only(tmp_path: Path) -> None:
    work, env = _project(tmp_path)
    _tiny_params(work)
    _repro(work, env)
    before = json.loads((work / "metrics" / "curate.json").read_text())["counts"]
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["curate"]["filters"][0]["min_words"] = 40
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    again = _repro(work, env)
    assert "Running stage 'ingest'" not in again.stdout
    for stage in ("curate", "tokenize", "shard"):
        assert f"Running stage '{stage}'" in again.stdout
    curate = json.loads((work / "metrics" / "curate.json").read_text())["counts"]
    # the new minimum took effect: more documents fail the length filter (the first failing filter names the
    # reason, so some of them were already removed by a later filter), and every count still conserves
    assert curate["filtered_too_short"] > before.get("filtered_too_short", 0)
    assert 0 < curate["kept"] <= before["kept"]
    assert curate["kept"] + curate["filtered"] + curate["duplicate"] == curate["raw_docs"] == before["raw_docs"]
    assert json.loads((work / "metrics" / "shard.json").read_text())["counts"]["samples"] == curate["kept"]
    assert "Running stage" not in _repro(work, env).stdout


@pytest.mark.slow
def test_a_dedup_budget_change_reruns_curate_alone_and_it_commits_nothing(tmp_path: Path) -> None:
    # dvc.yaml tracks the whole curate section, so DVC reruns curate; curate's own params leave the budget out
    # (dedup.config.EXECUTION_KEYS): it commits nothing and its pointer stays byte-identical, so tokenize and
    # shard do not rerun
    work, env = _project(tmp_path)
    _tiny_params(work)
    _repro(work, env)
    pointers = {p.name: p.read_bytes() for p in (work / "lake" / "pointers").glob("*.json")}
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["curate"]["dedup"]["driver_max_bytes"] = 0
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    again = _repro(work, env)
    assert "Running stage 'curate'" in again.stdout
    for stage in ("ingest", "train-tokenizer", "tokenize", "shard"):
        assert f"Running stage '{stage}'" not in again.stdout
    assert {p.name: p.read_bytes() for p in (work / "lake" / "pointers").glob("*.json")} == pointers
    assert "Running stage" not in _repro(work, env).stdout
