"""Run one stage in a fresh process, optionally SIGKILLed at a failpoint: `python stage_child.py CONFIG.json
STAGE [POINT]`. The kill targets this process (the driver), which takes its Spark JVM and workers down."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    config_path, stage = Path(sys.argv[1]), sys.argv[2]
    if len(sys.argv) > 3:
        os.environ["TOKENMILL_FAILPOINT"] = f"{sys.argv[3]}:{os.getpid()}"
    from pipelines.config import Config
    from pipelines.lake.spark import build_session
    from pipelines.stages import run_stage

    cfg = Config.model_validate(json.loads(config_path.read_text()))
    report = run_stage(stage, cfg, build_session(cfg.spark))
    sys.stdout.write(report.to_json() + "\n")
