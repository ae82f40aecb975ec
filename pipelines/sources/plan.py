"""Driver side of an ingest run, without Spark: turn sources + committed state into work units, and task
results back into the files to commit, the counts and the next state.

Each source is planned, and its units' results settled, by the kind of source serving its `type`
(`pipelines.sources.kinds`: objects of local folders and S3 prefixes in `object_kind`, Kafka offset ranges
in `kafka_kind`); this module only runs them.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from pipelines.sources import kinds
from pipelines.sources.config import KafkaSource, LocalSource, S3Source
from pipelines.sources.kafka_kind import plan_kafka, tp_key
from pipelines.sources.object_kind import plan_objects
from pipelines.sources.state import IngestState
from pipelines.sources.units import Unit, UnitResult

__all__ = ["Outcome", "Plan", "Source", "plan_kafka", "plan_objects", "plan_run", "settle", "tp_key"]

log = logging.getLogger(__name__)

Source = LocalSource | S3Source | KafkaSource


@dataclass
class Plan:
    """The work units of a run and what is needed to account for them afterwards."""

    units: list[Unit] = field(default_factory=list)
    objects_skipped: int = 0
    objects_changed: int = 0
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)  # baseline next offsets, before reading
    counts: Counter[str] = field(default_factory=Counter)


def plan_run(sources: list[Source], state: IngestState) -> Plan:
    """List every source (objects on the driver, Kafka watermarks) and build the run's units."""
    plan = Plan(offsets=copy.deepcopy(state.offsets))
    for i, src in enumerate(sources):
        kinds.for_source(src).plan(i, src, state, plan)
    return plan


@dataclass
class Outcome:
    """What the driver commits: files per table, counts, and the state after the run."""

    raw_files: list[str]
    quarantine_files: list[str]
    counts: dict[str, int]
    state: IngestState
    changed: bool


def settle(plan: Plan, results: list[UnitResult], sources: list[Source], state: IngestState, run_id: str
           ) -> Outcome:
    """Accept task results, each kind settling its own units (every object; Kafka chunks in offset order up to
    the first incomplete one); a deferred unit is left for the next run.

    Returns the files to commit, the counts (records_read = raw_docs + quarantined over accepted units) and the
    new state (ledger plus the accepted objects, offsets advanced to where accepted chunks stopped).
    """
    new = IngestState(ledger=dict(state.ledger), ledger_runs=dict(state.ledger_runs), resume=dict(state.resume),
                      offsets=copy.deepcopy(plan.offsets), committed_runs=set(state.committed_runs))
    counts: Counter[str] = Counter({"records_read": 0, "raw_docs": 0, "quarantined": 0, "objects_read": 0,
                                    "objects_skipped": plan.objects_skipped, "bytes_read": 0})
    counts.update(plan.counts)
    if plan.objects_changed:
        counts["objects_changed"] = plan.objects_changed
    by_kind: dict[str, list[UnitResult]] = defaultdict(list)
    for res in results:
        if res.deferred:
            counts["objects_deferred"] += 1  # not in the ledger: the next run reads it again
        else:
            by_kind[res.unit.kind].append(res)
    accepted: list[UnitResult] = []
    for name, kind in kinds.registered().items():  # registration order: the order files are committed in
        if by_kind.get(name):
            accepted += kind.settle(by_kind[name], sources, new, run_id, counts)
    for res in accepted:
        counts["raw_docs"] += res.raw_docs
        counts["quarantined"] += res.quarantined
        counts["records_read"] += res.raw_docs + res.quarantined
        counts["bytes_read"] += res.bytes_read
        for code, n in res.errors.items():
            counts[f"quarantine_{code}"] += n
    changed = bool(accepted) or new.offsets != state.offsets
    return Outcome(raw_files=[f for r in accepted for f in r.raw_files],
                   quarantine_files=[f for r in accepted for f in r.quarantine_files],
                   counts=dict(counts), state=new, changed=changed)
