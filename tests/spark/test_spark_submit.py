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


def _submit(job: str, *args: str, spark_args: tuple[str, ...] = ("--master", "local[2]")
            ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    script = job if job.endswith(".py") else f"jobs/run_{job}.py"
    return subprocess.run([str(SPARK_SUBMIT), *spark_args, script, *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _probe(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))  # type: ignore[no-any-return]


PARAMS_SPARK = ["spark.master=local[2]", "spark.conf={spark.sql.shuffle.partitions: '8', spark.app.name: params, "
                "spark.python.daemon.module: pyspark.daemon}"]


def test_spark_submit_master_and_conf_win_over_params() -> None:
    probe = _probe(_submit(
        "tests/spark/submit_probe.py", *PARAMS_SPARK,
        spark_args=("--master", "local[1]", "--name", "submitted", "--conf", "spark.sql.shuffle.partitions=3",
                    "--conf", "spark.ui.enabled=true", "--conf", "spark.sql.session.timeZone=Europe/Paris")))
    assert probe["master"] == "local[1]"
    assert probe["spark.app.name"] == "submitted"
    assert probe["spark.sql.shuffle.partitions"] == "3"
    assert probe["spark.ui.enabled"] == "true"
    assert probe["spark.sql.session.timeZone"] == "Europe/Paris"
    # keys spark-submit leaves unset get tokenmill's required settings
    assert probe["spark.sql.adaptive.enabled"] == "true"
    # but not the CLI session's defaults: --py-files may ship newer code than a preloading daemon would import
    assert probe["spark.python.daemon.module"] is None
    assert probe["jobs"] == 0  # nor does it start the Python workers ahead of the first task


def test_params_spark_settings_apply_to_the_cli_own_session() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    probe = _probe(subprocess.run([sys.executable, "tests/spark/submit_probe.py", *PARAMS_SPARK], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=600))
    assert probe["master"] == "local[2]"
    assert probe["spark.app.name"] == "params"
    assert probe["spark.sql.shuffle.partitions"] == "8"
    assert probe["spark.ui.enabled"] == "false"
    assert probe["spark.sql.session.timeZone"] == "UTC"
    # a key the CLI session sets by default (LOCAL_CONF: tokenmill's preloading daemon) is the user's to change
    assert probe["spark.python.daemon.module"] == "pyspark.daemon"
    assert probe["jobs"] == 1  # the CLI's own session starts its Python workers ahead of the first task


def test_driver_memory_comes_from_params_and_spark_submit_overrides_it() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    own = _probe(subprocess.run([sys.executable, "tests/spark/submit_probe.py", "spark.master=local[1]",
                                 "spark.driver_memory=1500m"], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=600))
    assert own["spark.driver.memory"] == "1500m"
    assert own["spark.python.daemon.module"] == "pipelines.lake.daemon.spark"  # LOCAL_CONF's default
    submitted = _probe(_submit("tests/spark/submit_probe.py", "spark.driver_memory=1500m",
                               spark_args=("--master", "local[1]", "--driver-memory", "1g")))
    assert submitted["spark.driver.memory"] == "1g"


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
    # spark-submit runs a job with jobs/ first on sys.path: no job may shadow a standard module (run_tokenize.py)
    for job in ("ingest", "curate", "tokenize", "shard", "train_tokenizer"):
        proc = subprocess.run([sys.executable, f"jobs/run_{job}.py", "--help"], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0 and "--config" in proc.stdout, proc.stderr[-2000:]


def test_bad_config_exits_2_from_a_job(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "jobs/run_shard.py", "--set", "shard.target_bytes=oops"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "shard.target_bytes" in proc.stderr
