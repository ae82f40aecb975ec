"""Shared body of the spark-submit entry points (`jobs/run_<stage>.py`): parse --config/--set, build the session,
run one stage, print its report as JSON."""

from __future__ import annotations

import argparse
import logging
import sys

from pipelines.config import load_config
from pipelines.errors import TokenmillError
from pipelines.secrets import install_log_redaction


def main(stage: str, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"jobs/run_{stage.replace('-', '_')}.py", description=f"tokenmill {stage} stage (spark-submit)")
    parser.add_argument("--config", default="params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    try:
        cfg = load_config(args.config, args.overrides)
        from pipelines.lake.spark import build_session
        from pipelines.stages import run_stage

        # under spark-submit, master, deploy mode and --conf come from spark-submit, not params.yaml
        report = run_stage(stage, cfg, build_session(cfg.spark))
    except TokenmillError as exc:
        print(f"tokenmill {stage}: {exc}", file=sys.stderr)
        return exc.exit_code
    print(report.to_json())
    return 0
