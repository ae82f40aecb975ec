"""Curate resuming after SIGKILL vs a full curate, on the bundled sample (or any params file).

Ingests the sources once into a scratch lake, then in one run, each curate in a fresh process (a cold Spark
driver, as after a real crash):
  1. a full curate (the anchor);
  2. a curate SIGKILLed right after the step `--kill-after` (default: the last step the run persists:
     `components` on the distributed plan, `duplicates` on the one-task plan, `curated` on the driver plan), then a
     re-run that continues from the persisted steps.
Prints the wall times, where the kill fell (share of a full run) and the ratio re-run / full run.
`--kill-at F` kills by the clock instead: SIGKILL after F times the full run's wall time, wherever the run is.

    python -m benchmarks.curate_resume [--config params.yaml] [--kill-after STEP] [--set KEY=VALUE]
    python -m benchmarks.curate_resume --set curate.dedup.single_task_max_bytes=0   # the distributed plan
    python -m benchmarks.curate_resume --gb 1 --kill-at 0.8   # the generated 1 GB corpus (benchmarks/dedup.py)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from pipelines.config import load_config  # noqa: E402

CHILD = ROOT / "tests" / "integration" / "curate_child.py"


def curate(config: Path, kill_after: str | None, kill_at: float | None = None) -> tuple[float, int, str]:
    """One curate in a child process: (wall seconds, exit code, its report or its stderr's tail); SIGKILLed at
    the failpoint after step `kill_after`, or `kill_at` seconds after its start."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(CHILD), str(config)] + ([f"curate.{kill_after}"] if kill_after else [])
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=err, text=True, env=env)
        try:
            proc.wait(timeout=kill_at)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)  # the driver; its Spark JVM and Python workers follow it down
            proc.wait()
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return seconds, proc.returncode, out.read() if proc.returncode == 0 else err.read()[-1500:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="params.yaml")
    parser.add_argument("--kill-after", default=None, help="default: the plan's last step (components, duplicates or curated)")
    parser.add_argument("--kill-at", type=float, default=None, metavar="F",
                        help="SIGKILL the second run after F x the full run's wall time (instead of --kill-after)")
    parser.add_argument("--gb", type=float, default=None,
                        help="ingest out/dedup-bench/corpus-<GB>gb.parquet (python -m benchmarks.dedup --e2e-gb GB)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.gb is not None:
        corpus = ROOT / "out" / "dedup-bench" / f"corpus-{args.gb:g}gb.parquet"
        if not corpus.exists():
            raise SystemExit(f"{corpus} is missing: run `python -m benchmarks.dedup --e2e-gb {args.gb:g}` first")
        args.set.insert(0, f"sources=[{{type: local, path: '{corpus}', id_field: doc_id}}]")
    tmp = Path(tempfile.mkdtemp(prefix="curate-resume-"))
    try:
        from pipelines.stages import run_stage

        # two lakes ingested alike: the anchor's and the killed run's (a curate of an already curated lake
        # with the same params is skipped, so the re-run must not follow the anchor on one lake)
        configs = []
        started = time.perf_counter()
        for name in ("full", "killed"):
            cfg = load_config(args.config, [f"lake.root={tmp / name}", f"lake.metrics_dir={tmp / name / 'metrics'}",
                                            "spark.master=local[2]", *args.set])
            run_stage("ingest", cfg)
            configs.append(tmp / f"{name}.json")
            configs[-1].write_text(json.dumps(cfg.model_dump(mode="json")))
        print(f"ingested twice in {time.perf_counter() - started:.1f}s", flush=True)
        config = configs[0]
        full, rc, out = curate(config, None)
        assert rc == 0, out
        counts = json.loads(out[out.index("{"):])["counts"]
        if args.kill_after is None and args.kill_at is None:  # the full run's metrics say which dedup plan ran
            # the last persisted step of that plan: the driver plan's is the filters' `curated`
            args.kill_after = ("components" if not counts.get("dedup_one_task") else
                               "curated" if counts.get("dedup_on_driver") else "duplicates")
        plan = ("distributed" if not counts.get("dedup_one_task") else
                "on the driver" if counts.get("dedup_on_driver") else "in one task")
        config = configs[1]
        killed, rc, out = curate(config, None if args.kill_at else args.kill_after,
                                 args.kill_at * full if args.kill_at else None)
        assert rc == -9, f"expected SIGKILL, got {rc}: {out}"
        rerun, rc, out = curate(config, None)
        assert rc == 0, out
        report = json.loads(out[out.index("{"):])
        where = f"at {args.kill_at:.0%} of the full run's time" if args.kill_at else f"after {args.kill_after}"
        print(f"{report['counts']['raw_docs']:,} raw docs, dedup {plan}; "
              f"full curate {full:.1f}s; killed {where} at {killed:.1f}s ({killed / full:.0%} of a full run); "
              f"re-run {rerun:.1f}s reading back {report['counts']['resumed_steps']} steps and "
              f"{report['counts'].get('resumed_rows', 0):,} rows of an unfinished one: "
              f"re-run / full = {rerun / full:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
