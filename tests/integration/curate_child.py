"""Run one curate in a fresh process, SIGKILLed at a failpoint when one is named:
`python curate_child.py CONFIG.json [POINT]`.
The kill targets this process's group (it is started as a session leader): the driver, its Spark JVM, the
Python worker daemon and every worker die at once, as on a lost node. Killing the driver alone would leave the
JVM finishing running tasks while it notices, and how many files a step then has would depend on timing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    config_path = Path(sys.argv[1])
    if len(sys.argv) > 2:
        os.environ["TOKENMILL_FAILPOINT"] = f"{sys.argv[2]}:-{os.getpgid(0)}"
    from pipelines.config import Config
    from pipelines.lake.spark import build_session
    from pipelines.stages.curate.spark import run_curate

    cfg = Config.model_validate(json.loads(config_path.read_text()))
    report = run_curate(build_session(cfg.spark), cfg)
    sys.stdout.write(report.to_json() + "\n")
