"""Quiet by default where nobody watches a terminal: a job under spark-submit and the CLI's own session log
Spark's warnings and errors only, and draw no console progress bar when stderr is not a TTY."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = "tests/spark/quiet_probe.py"
SPARK_INFO = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d INFO ", re.M)

pytestmark = pytest.mark.spark


def _probe(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))  # type: ignore[no-any-return]


def test_spark_submit_with_the_documented_log4j_option_logs_at_warn_without_progress_bars() -> None:
    # spark-submit starts the driver JVM before any of our code runs: its log level comes from the command
    # line (README, Logs), the progress setting from build_session
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    env.pop("SPARK_CONF_DIR", None)
    proc = subprocess.run([str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]",
                           "--driver-java-options", "-Dlog4j2.configurationFile=pipelines/lake/log4j2.properties",
                           PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert _probe(proc) == {"sum": 499500, "progress": "false"}
    assert SPARK_INFO.findall(proc.stderr) == [] and " INFO " not in proc.stderr, proc.stderr[-3000:]
    assert "[Stage" not in proc.stderr


def test_the_cli_session_uses_the_quiet_log4j_profile() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    proc = subprocess.run([sys.executable, PROBE, "spark.master=local[1]"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert _probe(proc) == {"sum": 499500, "progress": "false"}
    assert "Using Spark's default log4j profile" not in proc.stderr
    assert "NativeCodeLoader" not in proc.stderr and " INFO " not in proc.stderr
    assert "[Stage" not in proc.stderr
