"""The stage registry and the orchestration shared by the CLI, `spark-submit jobs/*.py` and `dvc repro`.

Each stage is `run(spark, cfg) -> StageReport`; after it returns, its metrics JSON and a small pointer file
(the snapshot ids it committed) are written under `<lake.root>/` so DVC can track them.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.stages.report import StageReport

if TYPE_CHECKING:
    # the config imports stage config models from this package: importing it here at run time would be circular
    from pipelines.config import Config
    from pipelines.lake.spark import SparkSession

log = logging.getLogger(__name__)

StageFn = Callable[["SparkSession", "Config"], StageReport]

# stage name -> "module:function"; imported lazily so `tokenmill --help` stays fast
STAGES: dict[str, str] = {
    "ingest": "pipelines.stages.ingest.spark:run_ingest",
    "curate": "pipelines.stages.curate.spark:run_curate",
    "tokenize": "pipelines.stages.tokenize.spark:run_tokenize",
    "shard": "pipelines.stages.shard.spark:run_shard",
}
EXTRA: dict[str, str] = {
    "train-tokenizer": "pipelines.stages.tokenize.spark:train_tokenizer",
}
PIPELINE = ("ingest", "curate", "tokenize", "shard")


def stage_function(name: str) -> StageFn:
    target = {**STAGES, **EXTRA}[name]
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def metrics_path(cfg: Config, stage: str) -> Path:
    return Path(cfg.lake.metrics_dir or Path(cfg.lake.root) / "metrics") / f"{stage}.json"


def pointer_path(cfg: Config, stage: str) -> Path:
    return Path(cfg.lake.root) / "pointers" / f"{stage}.json"


def history_path(cfg: Config, stage: str) -> Path:
    """Every run of the stage, one JSON line each (StageReport.record_run); the report reads it."""
    return Path(cfg.lake.root) / "runs" / f"{stage}.jsonl"


def _pointed_snapshots(pointer: Path) -> dict[str, Any] | None:
    """The snapshot ids the stage's previous run recorded in its pointer file (None without one)."""
    try:
        data = json.loads(pointer.read_text())
    except (OSError, ValueError):
        return None
    return data.get("snapshots") if isinstance(data, dict) else None


def build_stage_session(cfg: Config) -> SparkSession:
    """The session stages run in (`build_session(cfg.spark)`); the CLI's own new session starts its Python
    worker daemon in the background (`start_python_workers`: the daemon preloads the task-side modules)
    while the driver plans the first stage."""
    from pipelines.lake.spark import build_session

    return build_session(cfg.spark, start_workers=True)


def run_stage(name: str, cfg: Config, spark: SparkSession | None = None) -> StageReport:
    """Run one stage with a session (built from cfg.spark when not given), then write its metrics and pointer."""
    if spark is None:
        spark = build_stage_session(cfg)
    log.info("stage %s: start", name)
    start = time.perf_counter()
    report = stage_function(name)(spark, cfg)
    report.seconds = round(time.perf_counter() - start, 3)
    report.write_metrics(metrics_path(cfg, name))
    report.record_run(history_path(cfg, name), _pointed_snapshots(pointer_path(cfg, name)))
    pointer = {"stage": name, "snapshots": report.snapshots, "outputs": report.outputs,
               "params_hash": cfg.params_hash()}
    p = pointer_path(cfg, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(pointer, indent=2, sort_keys=True) + "\n")
    if cfg.monitor.prometheus_file:
        from pipelines.ops.monitor import stage_metrics, write_prometheus

        write_prometheus(cfg.monitor.prometheus_file, stage_metrics(metrics_path(cfg, name).parent))
    log.info("stage %s: done in %.1fs %s", name, report.seconds, report.counts)
    return report


def run_pipeline(cfg: Config, spark: SparkSession | None = None, stages: tuple[str, ...] = PIPELINE
                 ) -> list[StageReport]:
    """Run `stages` in order with one session. When the configured tokenizer file does not exist yet, a
    byte-level BPE is trained on clean_docs (`train-tokenizer`) right before tokenize."""
    if spark is None:
        spark = build_stage_session(cfg)
    tokenizer = cfg.tokenize.tokenizer
    if "tokenize" in stages and "://" not in tokenizer and not Path(tokenizer).exists():
        log.info("no tokenizer at %s: training one on clean_docs before tokenize", tokenizer)
        at = stages.index("tokenize")
        stages = (*stages[:at], "train-tokenizer", *stages[at:])
    return [run_stage(name, cfg, spark) for name in stages]
