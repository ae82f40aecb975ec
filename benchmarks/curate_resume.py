"""Curate resuming after SIGKILL vs a full curate, on the bundled sample (or any params file).

Ingests the sources once into a scratch lake, then in one run, each curate in a fresh process (a cold Spark
driver, as after a real crash):
  1. a full curate (the anchor);
  2. a curate SIGKILLed right after the step `--kill-after` (default: the last step the run persists:
     `components` on the distributed plan, `curated` when the input is deduplicated in one task), then a
     re-run that continues from the persisted steps.
Prints the wall times, where the kill fell (share of a full run) and the ratio re-run / full run.

    python -m benchmarks.curate_resume [--config params.yaml] [--kill-after STEP] [--set KEY=VALUE]
    python -m benchmarks.curate_resume --set curate.dedup.single_task_max_bytes=0   # the distributed plan
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from pipelines.config import load_config  # noqa: E402

CHILD = ROOT / "tests" / "integration" / "curate_child.py"


def curate(config: Path, kill_after: str | None) -> tuple[float, int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(CHILD), str(config)] + ([f"curate.{kill_after}"] if kill_after else [])
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc.returncode, proc.stdout if proc.returncode == 0 else proc.stderr[-1500:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="params.yaml")
    parser.add_argument("--kill-after", default=None, help="default: components, or curated for a one-task run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="curate-resume-"))
    try:
        from pipelines.stages import run_stage

        # two lakes ingested alike: the anchor's and the killed run's (a curate of an already curated lake
        # with the same params is skipped, so the re-run must not follow the anchor on one lake)
        configs = []
        for name in ("full", "killed"):
            cfg = load_config(args.config, [f"lake.root={tmp / name}", f"lake.metrics_dir={tmp / name / 'metrics'}",
                                            "spark.master=local[2]", *args.set])
            run_stage("ingest", cfg)
            configs.append(tmp / f"{name}.json")
            configs[-1].write_text(json.dumps(cfg.model_dump(mode="json")))
        config = configs[0]
        full, rc, out = curate(config, None)
        assert rc == 0, out
        if args.kill_after is None:  # the full run's metrics say which dedup plan ran
            one_task = json.loads(out[out.index("{"):])["counts"].get("dedup_one_task", 0)
            args.kill_after = "curated" if one_task else "components"
        config = configs[1]
        killed, rc, out = curate(config, args.kill_after)
        assert rc == -9, f"expected SIGKILL, got {rc}: {out}"
        rerun, rc, out = curate(config, None)
        assert rc == 0, out
        report = json.loads(out[out.index("{"):])
        print(f"{report['counts']['raw_docs']:,} raw docs; full curate {full:.1f}s; killed after {args.kill_after} at {killed:.1f}s "
              f"({killed / full:.0%} of a full run); re-run {rerun:.1f}s reading back "
              f"{report['counts']['resumed_steps']} steps: re-run / full = {rerun / full:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
