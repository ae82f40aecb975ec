"""Which curate run is due: nothing, the incremental one (new raw docs deduplicated against the kept ones),
or a full rebuild; see `pipelines.stages.snapshots` for the rules shared with tokenize and shard.

`curate.dedup.incremental` decides: true always runs incrementally, false always in full, unset (the default)
picks incremental when raw_docs only grew since the snapshot the last curate consumed, no ingest since read
a rewritten object again (a new version must replace the old one's decisions), and the curate params and
code version are unchanged. An interrupted run is completed the way it was started: a full run stopped
between its commits runs in full again; an incremental one is repaired by the incremental path.
"""

from __future__ import annotations

from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of

from pipelines import lake
from pipelines.config import Config
from pipelines.lake.summary import CLEAN_LINK, CURATE_MODE, DECISIONS_LINK, OBJECTS_REWRITTEN
from pipelines.stages.snapshots import INPUT_SNAPSHOT, InputPlan, input_snapshot, params_digest, plan_input

CODE_VERSION = "3"  # bump when curate decides differently for the same raw docs and params
# 2: arrival first; 3: of a doc_id's versions in one object, the newest ingest wins (was: the first arrival)


def stage_params(cfg: Config) -> str:
    """What fixes curate's decisions: the curate config (but not the choice of mode, nor the settings that only
    choose how dedup runs: `dedup.config.EXECUTION_KEYS`) and the code version."""
    return params_digest("curate", CODE_VERSION, cfg.curate.decision_params(mode=False))


def _snapshot_id(table: Table) -> str:
    snap = table.current_snapshot()
    return str(snap.snapshot_id) if snap is not None else ""


def _outputs_linked(cfg: Config, tables: dict[str, Table]) -> bool:
    """True when clean_docs (and dedup_index, with near dedup) were committed after the last decisions."""
    if lake.last_summary(tables["clean_docs"]).get(DECISIONS_LINK) != _snapshot_id(tables["doc_decisions"]):
        return False
    if cfg.curate.dedup.near:
        return lake.last_summary(tables["dedup_index"]).get(CLEAN_LINK) == _snapshot_id(tables["clean_docs"])
    return True


def _rewritten_since(raw: Table, prev: str | None, snapshot_id: int | None) -> int:
    """Objects that ingest read again as new versions (`objects_rewritten`) in the raw_docs snapshots after
    `prev` up to `snapshot_id`. An older version's rows were decided already, and the incremental path never
    changes a decision, so curate rebuilds in full to keep the newest version of each doc_id."""
    if not prev or snapshot_id is None:
        return 0
    total = 0
    for snap in ancestors_of(raw.snapshot_by_id(snapshot_id), raw.metadata):
        if str(snap.snapshot_id) == prev:
            break
        props = snap.summary.additional_properties if snap.summary else {}
        total += int(props.get(OBJECTS_REWRITTEN, "0"))
    return total


def choose_mode(cfg: Config, tables: dict[str, Table]) -> InputPlan:
    """The plan of this curate run over `tables` (raw_docs, doc_decisions, clean_docs, dedup_index)."""
    raw, decisions = tables["raw_docs"], tables["doc_decisions"]
    forced = cfg.curate.dedup.incremental
    last = lake.last_summary(decisions)
    plan = plan_input(raw, last, stage_params(cfg), snapshot_id=input_snapshot(cfg, raw),
                      incremental=forced is not False)

    def every() -> list[str]:
        return lake.data_files(raw, plan.snapshot_id) if plan.snapshot_id is not None else []

    if forced is True and plan.mode == "full":
        return InputPlan("incremental", f"curate.dedup.incremental is set ({plan.reason})", plan.snapshot_id,
                         every())
    rewritten = _rewritten_since(raw, last.get(INPUT_SNAPSHOT), plan.snapshot_id) if plan.mode == "incremental" else 0
    if rewritten and forced is not True:
        return InputPlan("full", f"raw_docs holds new versions of {rewritten} rewritten object(s)", plan.snapshot_id,
                         every())
    if plan.mode != "full" and not _outputs_linked(cfg, tables):
        if last.get(CURATE_MODE) == "full":
            return InputPlan("full", "completing an interrupted full run", plan.snapshot_id, every())
        return InputPlan("incremental", "completing an interrupted incremental run", plan.snapshot_id, every())
    return plan
