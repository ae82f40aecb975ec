"""The thin spark-submit entry points run a stage like the CLI does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import lake
from pipelines.config import load_config

REPO = Path(__file__).resolve().parents[2]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"

pytestmark = pytest.mark.spark


def _submit(job: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    return subprocess.run([str(SPARK_SUBMIT), "--master", "local[2]", f"jobs/{job}.py", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_spark_submit_ingest(tmp_path: Path) -> None:
    tiny = REPO / "tests" / "data" / "tiny"
    overrides = [f"lake.root={tmp_path / 'lake'}", f"lake.metrics_dir={tmp_path / 'metrics'}", f"sources=[{{type: local, path: '{tiny / 'input'}'}}]"]
    proc = _submit("ingest", "--config", "params.yaml", *[a for o in overrides for a in ("--set", o)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{\n  \"counts\""):])
    expected = json.loads((tiny / "expected.json").read_text())
    assert report["counts"]["records_read"] == expected["total_lines"]
    cfg = load_config(None, overrides)
    raw = lake.ensure_table(lake.open_catalog(cfg.lake), "tokenmill", "raw_docs")
    assert lake.read_table(raw, ("doc_id",)).num_rows == expected["total_lines"] - expected["malformed_lines"]


def test_every_job_parses_its_arguments() -> None:
    # jobs/tokenize.py must not shadow the standard tokenize module when its folder is on sys.path
    for job in ("ingest", "curate", "tokenize", "shard"):
        proc = subprocess.run([sys.executable, f"jobs/{job}.py", "--help"], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0 and "--config" in proc.stdout, proc.stderr[-2000:]


def test_bad_config_exits_2_from_a_job(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "jobs/shard.py", "--set", "shard.target_bytes=oops"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "shard.target_bytes" in proc.stderr
