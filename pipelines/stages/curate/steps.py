"""Persisted steps of a full curate, so that a run killed midway continues where it stopped.

A curate writes each expensive intermediate result as Parquet under one folder (local or S3) keyed by the
raw_docs snapshot it read and the curate parameters (`steps_dir`): the filtered documents with their
signatures, the verified candidate edges, every round of connected components and the components
themselves. A step is complete when its folder has the `_SUCCESS` marker (written last, after every
task's file), so a
SIGKILL during a step leaves it incomplete and a re-run recomputes that step only. A run with another
input snapshot or other parameters gets another key and starts afresh (folders of other keys are removed
then); a run that commits removes its folder.
"""

from __future__ import annotations

import hashlib
import json
import logging

from dedup.steps.spark import remove_folder, subfolders
from pipelines.config import Config
from pipelines.stages.curate.mode import CODE_VERSION
from pipelines.storage import S3Options

log = logging.getLogger(__name__)

def steps_root(cfg: Config) -> str:
    """Where persisted curate steps live: `curate-steps/` under the lake's scratch location (`lake.scratch`,
    default `<warehouse>/_scratch`), local or S3 (the tasks write and read the steps through pyarrow)."""
    return f"{cfg.lake.scratch_uri().rstrip('/')}/curate-steps"


def steps_dir(cfg: Config, raw_snapshot_id: int | None, outputs: str = "") -> str:
    """The folder URI of one (input snapshot, curate parameters, `outputs`) triple; folders of others are
    removed. `outputs` names the output snapshots an incremental run builds on (its new documents are the
    raw docs without a decision, its old ones those clean_docs and dedup_index hold). Dedup's execution
    settings (`dedup.config.EXECUTION_KEYS`: memory budgets, round limits) are not part of the key: every plan
    names its steps apart and computes the same rows, so a run re-tried with a smaller budget after running
    out of memory keeps the steps the first attempt finished (the filter pass above all)."""
    params = json.dumps(cfg.curate.decision_params(), sort_keys=True)
    key = hashlib.sha256(f"{raw_snapshot_id}|{cfg.lake.read_version}|{params}|{CODE_VERSION}|{outputs}".encode()
                         ).hexdigest()[:16]
    root = steps_root(cfg)
    for other in subfolders(root, steps_s3(cfg)):
        if other != key:
            log.info("curate: dropping persisted steps of another input or parameters (%s)", other)
            remove_folder(f"{root}/{other}", steps_s3(cfg))
    return f"{root}/{key}"


def steps_s3(cfg: Config) -> S3Options | None:
    """The S3 settings the steps are reached with (None for a local scratch)."""
    return cfg.lake.task_s3() if cfg.lake.scratch_uri().startswith("s3://") else None
