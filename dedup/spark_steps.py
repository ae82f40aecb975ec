"""Persisted steps of a Spark job, so that a run killed midway continues where it stopped.

Each step's result is Parquet in its own folder under one run folder, written and read by the tasks through
pyarrow (`pipelines.lake.files.spark`, no Hadoop filesystem); a step is complete when its folder has the `_SUCCESS`
marker, written by the driver last, after every task's file, and naming those files and their schema (files of
failed task attempts are not named, so never read). A SIGKILL during a step leaves it incomplete and a re-run
recomputes that step only. Without a folder, steps are local checkpoints (nothing
survives the process). The caller picks the folder, keyed by whatever makes results comparable.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import to_arrow_schema

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
            return self._read(name)
        self._write(name, compute())
        self._on_done(name)
        return self._read(name)

    def _write(self, name: str, df: DataFrame) -> None:
        from pipelines.lake.files.spark import write_files

        folder = Path(self.path(name))
        shutil.rmtree(folder, ignore_errors=True)  # what an interrupted attempt at this step left
        schema = to_arrow_schema(df.schema, timezone="UTC", prefers_large_types=False)
        files, _ = write_files(df, folder.as_uri(), schema, prefix="part")
        marker = {"files": files, "schema": base64.b64encode(schema.serialize().to_pybytes()).decode()}
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{MARKER}.tmp"
        tmp.write_text(json.dumps(marker))
        tmp.replace(folder / MARKER)

    def _read(self, name: str) -> DataFrame:
        from pipelines.lake.files.spark import read_units_df

        marker = json.loads((Path(self.path(name)) / MARKER).read_text())
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(marker["schema"])))
        return read_units_df(self.spark, [(f, -1) for f in marker["files"]], schema)

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
        return rounds[-1], self._read(name)

    def remove(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
