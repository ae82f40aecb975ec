"""Helpers of the exactly-once tests: run ingest in a child process that is SIGKILLed at a failpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from pipelines.config import Config

CHILD = Path(__file__).with_name("ingest_child.py")
REPO = Path(__file__).resolve().parents[2]


def ingest_killed_at(cfg: Config, point: str, tmp: Path, timeout: float = 300) -> None:
    """Run ingest in a child process and check that it died by SIGKILL at `point`."""
    data = cfg.model_dump(mode="json")
    data["spark"] = {"master": "local[2]", "app_name": "tokenmill-crash", "conf": {"spark.ui.showConsoleProgress": "false"}}
    path = tmp / f"config-{point}.json"
    path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, str(CHILD), str(path), point], cwd=REPO, capture_output=True,
                          timeout=timeout, text=True)
    assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
