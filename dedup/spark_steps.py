"""Persisted steps of a Spark job, so that a run killed midway continues where it stopped.

Each step's result is Parquet in its own folder under one run folder; a step is complete when its folder has
Spark's `_SUCCESS` marker (written last, after every task's file), so a SIGKILL during a step leaves it
incomplete and a re-run recomputes that step only. Without a folder, steps are local checkpoints (nothing
survives the process). The caller picks the folder, keyed by whatever makes results comparable.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

MARKER = "_SUCCESS"


class Steps:
    """Persisted steps under one folder; `reused` names the steps a run read back instead of computing;
    `on_done(name)` is called after a step is written (crash tests hook a failpoint there)."""

    def __init__(self, spark: SparkSession, folder: Path | None,
                 on_done: Callable[[str], None] | None = None) -> None:
        self.spark = spark
        self.folder = folder
        self.reused: list[str] = []
        self._on_done = on_done or (lambda name: None)

    def done(self, name: str) -> bool:
        return self.folder is not None and (self.folder / name / MARKER).exists()

    def path(self, name: str) -> str:
        if self.folder is None:
            raise ValueError("no folder for persisted steps")
        return str(self.folder / name)

    def materialize(self, name: str, compute: Callable[[], DataFrame]) -> DataFrame:
        """The step's result: read back when complete, else computed, written and read back."""
        if self.folder is None:
            return compute().localCheckpoint()
        if self.done(name):
            log.info("reusing persisted step %s", name)
            self.reused.append(name)
            return self.spark.read.parquet(self.path(name))
        compute().write.mode("overwrite").parquet(self.path(name))
        self._on_done(name)
        return self.spark.read.parquet(self.path(name))

    def last_round(self, prefix: str) -> tuple[int, DataFrame] | None:
        """The highest complete round `<prefix>-NNN` and its result, or None."""
        if self.folder is None or not self.folder.exists():
            return None
        rounds = sorted(int(p.name.rsplit("-", 1)[1]) for p in self.folder.glob(f"{prefix}-*")
                        if (p / MARKER).exists())
        if not rounds:
            return None
        name = f"{prefix}-{rounds[-1]:03d}"
        self.reused.append(name)
        return rounds[-1], self.spark.read.parquet(self.path(name))

    def remove(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
