"""Ingest state kept in Iceberg: Kafka offsets and the ledger of ingested objects, plus crash recovery.

Protocol (pyiceberg has no multi-table transaction, so raw_docs is the single point of truth):

1. Tasks write Parquet files; nothing is visible yet.
2. The driver commits the run's quarantine files (snapshot summary: stage=ingest, run_id).
3. The driver commits the run's raw_docs files; the same snapshot's summary carries the run_id, the counts,
   the cumulative Kafka offsets (`tokenmill.ingest.kafka_offsets`, JSON) and a pointer to the cumulative
   ledger of objects (`tokenmill.ingest.ledger`: a Parquet file in the table's metadata folder, with its
   sha256 and row count beside it, so the summary stays small however many objects there are).

A run is committed iff step 3 landed. Before planning, every run deletes the quarantine rows of runs that
appended to quarantine but never reached raw_docs (a kill between 2 and 3) and are provably dead (their lease,
`pipelines.sources.lease`, is gone, their process is gone, or their heartbeat is stale): a run still between
its two commits is left alone. The delete is one commit whose summary lists the runs it cleaned. A kill anywhere therefore leaves either the whole run or nothing, and
the next run re-reads exactly what was not committed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import lake
from pipelines.errors import TokenmillError
from pipelines.lake import summary as keys
from pipelines.sources.resume import ResumePoint
from pipelines.storage import filesystem

if TYPE_CHECKING:  # the driver's: ingest tasks import this module too (IngestState) and never touch a table
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

log = logging.getLogger(__name__)

STAGE = "ingest"

# Version 2 added where a plain JSON-lines object was read up to (`pipelines.sources.resume`); a version 1
# ledger (the first four columns) is read as having no resume points: such an object, when it grows, is
# read whole once more as a new version, and the ledger written then is version 2.
LEDGER_SCHEMA = pa.schema([("uri", pa.string()), ("size", pa.int64()), ("etag", pa.string()),
                           ("run_id", pa.string()), ("read_bytes", pa.int64()), ("read_lines", pa.int64()),
                           ("head_sha256", pa.string()), ("tail_sha256", pa.string())])
RESUME_COLUMNS = ("read_bytes", "read_lines", "head_sha256", "tail_sha256")


class LedgerError(TokenmillError):
    """The ledger file a raw_docs snapshot points at is missing or does not match its recorded sha256."""

    exit_code = 14


@dataclass
class IngestState:
    """What earlier committed runs ingested: object ledger (uri -> (size, etag)), the resume points of the
    plain JSON-lines objects among them, and Kafka next offsets (source label -> "topic/partition" -> next
    offset)."""

    ledger: dict[str, tuple[int, str]] = field(default_factory=dict)
    ledger_runs: dict[str, str] = field(default_factory=dict)
    resume: dict[str, ResumePoint] = field(default_factory=dict)  # uri -> where its last read stopped
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)
    committed_runs: set[str] = field(default_factory=set)


def _props(snap: Snapshot) -> dict[str, str]:
    return snap.summary.additional_properties if snap.summary else {}


def _ingest_snapshots(table: Table) -> list[Snapshot]:
    """Ingest snapshots of the current snapshot's ancestry, newest first."""
    from pyiceberg.table.snapshots import ancestors_of

    snap = table.current_snapshot()
    if snap is None:
        return []
    return [s for s in ancestors_of(snap, table.metadata) if _props(s).get(keys.STAGE) == STAGE]


def load_state(raw_docs: Table) -> IngestState:
    """The state recorded by the newest ingest commit of raw_docs (empty before the first).

    Raises LedgerError when the ledger file it points at is gone or altered.
    """
    snaps = _ingest_snapshots(raw_docs)
    state = IngestState(committed_runs={_props(s)[keys.RUN_ID] for s in snaps if keys.RUN_ID in _props(s)})
    if not snaps:
        return state
    props = _props(snaps[0])
    state.offsets = json.loads(props.get(keys.KAFKA_OFFSETS, "{}"))
    uri = props.get(keys.LEDGER)
    if uri:
        fs, path = filesystem(uri, lake.table_s3(raw_docs))
        try:
            with fs.open_input_stream(path) as f:
                data = f.read()
        except (FileNotFoundError, OSError) as exc:
            raise LedgerError(f"ingest ledger {uri} cannot be read: {exc}") from None
        if hashlib.sha256(data).hexdigest() != props.get(keys.LEDGER_SHA256):
            raise LedgerError(f"ingest ledger {uri} does not match the sha256 in its snapshot summary")
        table = pq.read_table(io.BytesIO(data))
        for uri_, size, etag, run in zip(*(table.column(c).to_pylist() for c in LEDGER_SCHEMA.names[:4]),
                                         strict=True):
            state.ledger[uri_] = (size, etag)
            state.ledger_runs[uri_] = run
        if set(RESUME_COLUMNS) <= set(table.column_names):  # version 2
            uris = table.column("uri").to_pylist()
            for uri_, *point in zip(uris, *(table.column(c).to_pylist() for c in RESUME_COLUMNS), strict=True):
                if point[0] is not None:
                    state.resume[uri_] = ResumePoint(*point)
    return state


def write_ledger(raw_docs: Table, state: IngestState, run_id: str) -> dict[str, str]:
    """Write the cumulative ledger as Parquet next to the table metadata; return its summary properties."""
    uris = sorted(state.ledger)
    points = [state.resume.get(u) for u in uris]
    table = pa.table({"uri": uris, "size": [state.ledger[u][0] for u in uris],
                      "etag": [state.ledger[u][1] for u in uris],
                      "run_id": [state.ledger_runs.get(u, run_id) for u in uris],
                      **{c: [getattr(p, c) if p else None for p in points] for c in RESUME_COLUMNS}},
                     schema=LEDGER_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    uri = f"{raw_docs.location().rstrip('/')}/metadata/ingest-ledger-{run_id}.parquet"
    fs, path = filesystem(uri, lake.table_s3(raw_docs))
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)
    return {keys.LEDGER: uri, keys.LEDGER_SHA256: hashlib.sha256(data).hexdigest(), keys.LEDGER_OBJECTS: str(len(uris))}


def offsets_property(offsets: dict[str, dict[str, int]]) -> dict[str, str]:
    return {keys.KAFKA_OFFSETS: json.dumps(offsets, sort_keys=True, separators=(",", ":"))} if offsets else {}


def orphan_runs(raw_docs: Table, quarantine: Table) -> list[str]:
    """Runs that appended quarantine rows but never committed raw_docs, and were not cleaned yet."""
    from pyiceberg.table.snapshots import Operation

    committed = {_props(s).get(keys.RUN_ID) for s in _ingest_snapshots(raw_docs)}
    appended, cleaned = set(), set()
    for snap in _ingest_snapshots(quarantine):
        props = _props(snap)
        if keys.CLEANED_RUNS in props:
            cleaned |= set(json.loads(props[keys.CLEANED_RUNS]))
        elif snap.summary is not None and snap.summary.operation == Operation.APPEND and keys.RUN_ID in props:
            appended.add(props[keys.RUN_ID])
    return sorted(appended - committed - cleaned)


def delete_orphans(quarantine: Table, runs: list[str], summary: dict[str, str]) -> None:
    """Delete the quarantine rows of `runs` in one commit that records them as cleaned."""
    from pyiceberg.expressions import In

    log.warning("removing quarantine rows of %d ingest run(s) that did not commit raw_docs: %s", len(runs),
                ", ".join(runs))
    # pyiceberg types its expressions as pydantic models, hiding their positional constructors from mypy
    quarantine.delete(
        In("run_id", runs),  # type: ignore[call-arg, arg-type]
        snapshot_properties={**summary, keys.CLEANED_RUNS: json.dumps(runs)},
    )
    quarantine.refresh()
