"""Run one ingest in a fresh process, optionally SIGKILLed at a failpoint: `python ingest_child.py CONFIG.json
[POINT]`. The kill targets this process (the driver), which takes its Spark JVM and workers down with it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    config_path = Path(sys.argv[1])
    if len(sys.argv) > 2:
        os.environ["TOKENMILL_FAILPOINT"] = f"{sys.argv[2]}:{os.getpid()}"
    from pipelines.config import Config
    from pipelines.lake.spark import build_session
    from pipelines.stages.ingest.spark import run_ingest

    cfg = Config.model_validate(json.loads(config_path.read_text()))
    spark = build_session(cfg.spark)
    report = run_ingest(spark, cfg)
    sys.stdout.write(report.to_json() + "\n")
