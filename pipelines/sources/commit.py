"""Committing an ingest run against the raw_docs snapshot it planned from.

raw_docs carries the ledger and the Kafka offsets, so its commit decides what was ingested. pyiceberg would
rebase a conflicting append onto whatever another run committed meanwhile, and so append the same input
twice; here the commit is made only if raw_docs is still at the snapshot the run's state was read from, with
pyiceberg's own retries off for it. When another run committed in between, the run re-plans its commit: if
the other runs touched none of its objects and none of its Kafka partitions (different sources, or other
partitions), its ledger entries and offsets are merged onto the newest state and the commit is tried again
against the new snapshot; otherwise the run fails with one line (`ConcurrentIngestError`), committing nothing.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table, TableProperties

from pipelines.errors import TokenmillError
from pipelines.sources.state import IngestState, load_state

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 5


class ConcurrentIngestError(TokenmillError):
    """Another ingest run committed the same objects or Kafka partitions first; this run committed nothing."""

    exit_code = 15


def snapshot_id(table: Table) -> int | None:
    snap = table.current_snapshot()
    return snap.snapshot_id if snap else None


def _delta(planned: IngestState, ours: IngestState) -> tuple[dict[str, tuple[int, str]], dict[str, dict[str, int]]]:
    """What this run adds to the state it planned from: ledger entries and Kafka offsets that changed."""
    ledger = {u: v for u, v in ours.ledger.items() if planned.ledger.get(u) != v}
    offsets: dict[str, dict[str, int]] = {}
    for label, parts in ours.offsets.items():
        before = planned.offsets.get(label, {})
        changed = {tp: o for tp, o in parts.items() if before.get(tp) != o}
        if changed:
            offsets[label] = changed
    return ledger, offsets


def rebase(planned: IngestState, ours: IngestState, fresh: IngestState, run_id: str) -> IngestState | None:
    """`ours` re-applied on `fresh` (the state another run committed since `planned`), or None when the
    other run changed an object or a Kafka partition this run read (a conflict: committing would duplicate).

    >>> a = IngestState(ledger={"x": (1, "e")})
    >>> mine = IngestState(ledger={"x": (1, "e"), "y": (2, "f")})
    >>> sorted(rebase(a, mine, IngestState(ledger={"x": (1, "e"), "z": (3, "g")}), "r").ledger)
    ['x', 'y', 'z']
    >>> rebase(a, mine, IngestState(ledger={"x": (1, "e"), "y": (2, "f")}), "r") is None
    True
    """
    ledger, offsets = _delta(planned, ours)
    for uri in ledger:
        if fresh.ledger.get(uri) != planned.ledger.get(uri):
            return None
    for label, parts in offsets.items():
        for tp in parts:
            if fresh.offsets.get(label, {}).get(tp) != planned.offsets.get(label, {}).get(tp):
                return None
    merged = IngestState(ledger=dict(fresh.ledger), ledger_runs=dict(fresh.ledger_runs),
                         resume=dict(fresh.resume), offsets=copy.deepcopy(fresh.offsets),
                         committed_runs=set(fresh.committed_runs))
    for uri, entry in ledger.items():
        merged.ledger[uri] = entry
        merged.ledger_runs[uri] = ours.ledger_runs.get(uri, run_id)
        merged.resume.pop(uri, None)
        if uri in ours.resume:
            merged.resume[uri] = ours.resume[uri]
    for label, parts in offsets.items():
        merged.offsets.setdefault(label, {}).update(parts)
    return merged


Planned = tuple[int | None, IngestState, IngestState]  # (raw_docs snapshot, state there, this run's state)


def catch_up(raw: Table, planned: Planned, run_id: str) -> Planned:
    """Refresh raw_docs; when another run committed since `planned`, merge this run's state onto the newest
    (`rebase`) and return the new (snapshot, state there, merged state). Raises ConcurrentIngestError on a
    conflict."""
    expected, base, state = planned
    raw.refresh()
    current = snapshot_id(raw)
    if current == expected:
        return planned
    fresh = load_state(raw)
    merged = rebase(base, state, fresh, run_id)
    if merged is None:
        raise ConcurrentIngestError(
            f"ingest: another run committed raw_docs snapshot {current} with objects or Kafka offsets this run "
            "also read; this run committed nothing (run ingest again to read what is left)")
    log.warning("ingest %s: raw_docs moved to snapshot %s since planning (another ingest of other input); "
                "merging this run's ledger and offsets onto it", run_id[:8], current)
    return current, fresh, merged


def commit_raw(raw: Table, planned: Planned, run_id: str, commit: Callable[[IngestState], None]) -> None:
    """Call `commit(state)` so that it lands only on the raw_docs snapshot `state` was merged onto.

    `commit` must make exactly one snapshot-producing transaction on `raw`. Raises ConcurrentIngestError when
    another run committed an overlapping part of the input, or when the table keeps moving.
    """
    for _ in range(COMMIT_ATTEMPTS):
        planned = catch_up(raw, planned, run_id)
        _no_retries(raw)
        try:
            commit(planned[2])
            return
        except CommitFailedException:
            log.warning("ingest %s: raw_docs commit lost a race; re-planning the commit", run_id[:8])
    raise ConcurrentIngestError(f"ingest: raw_docs kept changing during {COMMIT_ATTEMPTS} commit attempts; "
                                "this run committed nothing")


def _no_retries(table: Table) -> None:
    """Turn off pyiceberg's rebase-and-retry for the next commit of this Table object only (the property is
    not written to the catalog): a conflict must reach `commit_raw`, which decides whether merging is safe."""
    props = {**table.metadata.properties, TableProperties.COMMIT_NUM_RETRIES: "0"}
    table.metadata = table.metadata.model_copy(update={"properties": props})
