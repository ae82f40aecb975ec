"""Persisted steps of a full curate, so that a run killed midway continues where it stopped.

A full curate writes each expensive intermediate result as Parquet under one folder keyed by the raw_docs
snapshot it read and the curate parameters (`steps_dir`): the filtered documents, the MinHash signatures,
the verified candidate edges, every round of connected components and the components themselves. A step
is complete when its folder has Spark's `_SUCCESS` marker (written last, after every task's file), so a
SIGKILL during a step leaves it incomplete and a re-run recomputes that step only. A run with another
input snapshot or other parameters gets another key and starts afresh (folders of other keys are removed
then); a run that commits removes its folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from pipelines.config import Config
from pipelines.stages.curate.mode import CODE_VERSION
from pipelines.storage import local_path

log = logging.getLogger(__name__)

def steps_root(cfg: Config) -> Path | None:
    """Where persisted curate steps live: `curate-steps/` under the lake's scratch location (`lake.scratch`,
    default `<warehouse>/_scratch`) when that is local; None (no persisted steps) for an S3 scratch, as the
    steps are written by Spark's own Parquet writer, which needs the Hadoop S3 jars tokenmill does without."""
    uri = cfg.lake.scratch_uri()
    if not uri.startswith("file://"):
        return None
    return Path(local_path(uri)) / "curate-steps"


def steps_dir(cfg: Config, raw_snapshot_id: int | None) -> Path | None:
    """The folder of one (input snapshot, curate parameters) pair; folders of other pairs are removed."""
    params = json.dumps(cfg.curate.model_dump(mode="json"), sort_keys=True)
    key = hashlib.sha256(f"{raw_snapshot_id}|{cfg.lake.read_version}|{params}|{CODE_VERSION}".encode()).hexdigest()[:16]
    root = steps_root(cfg)
    if root is None:
        log.info("curate: scratch is not local, steps are not persisted (a killed run starts again)")
        return None
    if root.exists():
        for other in root.iterdir():
            if other.name != key:
                log.info("curate: dropping persisted steps of another input or parameters (%s)", other.name)
                shutil.rmtree(other, ignore_errors=True)
    return root / key
