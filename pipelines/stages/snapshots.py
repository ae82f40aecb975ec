"""What a stage has to do, from its input table's snapshot history: nothing, only the appended rows, or all.

Each stage records in its output commit's snapshot summary the input snapshot it consumed
(`tokenmill.input_snapshot_id`) and a hash of what fixes its output (`tokenmill.stage_params`: its config
section, the tokenizer, a code version). On the next run:

- same params and the same input snapshot -> `skip` (commit nothing);
- same params, and every snapshot from the consumed one to the current one is an Iceberg `append` ->
  `incremental` over the data files added since (exactly the new rows: appends never remove files);
- anything else (first run, params or tokenizer or code version changed, the input was overwritten, deleted
  from, or its consumed snapshot expired) -> `full`, with the reason in one log line and in the summary.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from pyiceberg.manifest import ManifestContent
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation

from pipelines import lake
from pipelines.lake.summary import INPUT_SNAPSHOT, MODE, REBUILD_REASON, STAGE_PARAMS

log = logging.getLogger(__name__)

Mode = Literal["skip", "incremental", "full"]


def params_digest(*parts: Any) -> str:
    """sha256 (hex, first 32) of the canonical JSON of `parts`: the stage_params recorded per commit."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


@dataclass(frozen=True)
class InputPlan:
    """A stage's work for one run. `snapshot_id` is the input snapshot it reads (None: input empty);
    `files` the data files to process in incremental mode (empty for skip; all files for full);
    `appended_since` the snapshot the stage consumed last when `files` are exactly the data files appended
    after it (rows no earlier run of the stage has seen), else None."""

    mode: Mode
    reason: str
    snapshot_id: int | None
    files: list[str] = field(default_factory=list)
    appended_since: int | None = None

    def summary(self) -> dict[str, str]:
        """Snapshot summary properties recording this plan (mode, reason, consumed input snapshot)."""
        props = {MODE: self.mode, INPUT_SNAPSHOT: "" if self.snapshot_id is None else str(self.snapshot_id)}
        if self.mode == "full":
            props[REBUILD_REASON] = self.reason
        return props


def _appended_since(table: Table, old: int, new: int) -> tuple[bool, str]:
    """(True, "") when `new` descends from `old` through append snapshots only, else (False, why not)."""
    snap = table.snapshot_by_id(new)
    while snap is not None and snap.snapshot_id != old:
        op = snap.summary.operation if snap.summary is not None else None
        if op != Operation.APPEND:
            return False, f"input was rewritten ({op.value if op else 'unknown'} at snapshot {snap.snapshot_id})"
        parent = snap.parent_snapshot_id
        snap = table.snapshot_by_id(parent) if parent is not None else None
    if snap is None:
        return False, f"input snapshot {old} consumed last time is not an ancestor of {new} (expired or rewritten)"
    return True, ""


def appended_files(table: Table, since: int, snapshot_id: int) -> list[str]:
    """The data files that the append snapshots after `since` up to `snapshot_id` added (the caller checked
    that they are all appends, `_appended_since`). Only the manifests those snapshots wrote are read, not the
    table's whole history: a live entry whose adding snapshot is one of them is a new file, whether it sits in
    that snapshot's own manifest or (after a manifest merge) in a later one of them."""
    new_ids: set[int] = set()
    snap = table.snapshot_by_id(snapshot_id)
    while snap is not None and snap.snapshot_id != since:
        new_ids.add(snap.snapshot_id)
        snap = table.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id is not None else None
    current = table.snapshot_by_id(snapshot_id)
    files: list[str] = []
    for manifest in current.manifests(table.io) if current is not None else []:
        if manifest.added_snapshot_id not in new_ids or manifest.content != ManifestContent.DATA:
            continue
        files += [e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
                  if e.snapshot_id in new_ids]
    return files


def plan_input(input_table: Table, last: dict[str, str], stage_params: str, *,
               snapshot_id: int | None = None, incremental: bool = True) -> InputPlan:
    """Decide skip / incremental / full for a stage reading `input_table` at `snapshot_id` (default: its
    current snapshot), given `last`, the tokenmill summary of the stage's own last commit ({} when none).
    `incremental=False` forces a full rebuild (reason "incremental mode off")."""
    if snapshot_id is None:
        current = input_table.current_snapshot()
        snapshot_id = current.snapshot_id if current is not None else None
    prev = last.get(INPUT_SNAPSHOT)
    reason = ""
    if not last:
        reason = "no earlier run"
    elif last.get(STAGE_PARAMS) != stage_params:
        reason = "params, tokenizer or code version changed" if last.get(STAGE_PARAMS) else "no recorded params"
    elif not incremental:
        reason = "incremental mode off"
    elif prev is None:
        reason = "no recorded input snapshot"
    elif prev == ("" if snapshot_id is None else str(snapshot_id)):
        return InputPlan("skip", "input unchanged", snapshot_id)
    elif snapshot_id is None:
        reason = "input table has no snapshot"
    elif prev == "":
        return InputPlan("incremental", "input was empty", snapshot_id, lake.data_files(input_table, snapshot_id))
    else:
        ok, reason = _appended_since(input_table, int(prev), snapshot_id)
        if ok:
            added = appended_files(input_table, int(prev), snapshot_id)
            return InputPlan("incremental", f"{len(added)} data files appended", snapshot_id, added, int(prev))
    files = lake.data_files(input_table, snapshot_id) if snapshot_id is not None else []
    return InputPlan("full", reason, snapshot_id, files)


def appended_rows(table: Table, plan: InputPlan) -> int | None:
    """Rows in the data files an incremental `plan` appended since `plan.appended_since`, from the Iceberg
    snapshot summaries (`added-records`) alone, without reading a file; None when unknown."""
    if plan.appended_since is None or plan.snapshot_id is None:
        return None
    total, snap = 0, table.snapshot_by_id(plan.snapshot_id)
    while snap is not None and snap.snapshot_id != plan.appended_since:
        added = snap.summary.additional_properties.get("added-records") if snap.summary is not None else None
        if added is None:
            return None
        total += int(added)
        snap = table.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id is not None else None
    return total if snap is not None else None


def input_snapshot(cfg: Any, table: Table) -> int | None:
    """The input snapshot a stage reads: the one tagged by `lake.read_version`, else the current one."""
    if cfg.lake.read_version:
        from pipelines.ops.versions import resolve_version

        return resolve_version(cfg, cfg.lake.read_version).snapshot_id(table.name()[-1])
    snap = table.current_snapshot()
    return snap.snapshot_id if snap is not None else None


def log_plan(stage: str, plan: InputPlan) -> None:
    if plan.mode == "full":
        log.info("%s: full rebuild: %s", stage, plan.reason)
    else:
        log.info("%s: %s (%s)", stage, plan.mode, plan.reason)
