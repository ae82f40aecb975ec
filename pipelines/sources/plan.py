"""Driver side of an ingest run, without Spark: turn sources + committed state into work units, and task
results back into the files to commit, the counts and the next state.

Objects are skipped when the ledger holds the same URI with the same size and ETag; a plain JSON-lines object
that only grew is read on from where the last run stopped (`pipelines.sources.resume`); any other changed
object is read whole again as a new version (its old rows stay: ingest appends, and curate keeps the newest
version of each doc_id). Kafka partitions start at the stored next offset, else at
`starting_offsets`; a stored offset outside the partition's range (below its earliest: lost to retention;
past its end: the topic was recreated or truncated) stops the run naming the partition, or with
`reset: earliest` starts at the earliest offset (counted as `kafka_offsets_lost` / `kafka_offsets_reset`). Chunks of one partition are accepted in offset order up to the first
incomplete one, so the stored offset never passes a record that is not committed.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from pipelines.errors import StageInputError
from pipelines.sources import kafka as kafka_source
from pipelines.sources import objects as object_source
from pipelines.sources.config import KafkaSource, LocalSource, S3Source
from pipelines.sources.formats import detect_format
from pipelines.sources.resume import ResumePoint, resumable
from pipelines.sources.state import IngestState

log = logging.getLogger(__name__)

Source = LocalSource | S3Source | KafkaSource


@dataclass
class Plan:
    """The work units of a run and what is needed to account for them afterwards."""

    units: list[dict[str, Any]] = field(default_factory=list)
    objects_skipped: int = 0
    objects_changed: int = 0
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)  # baseline next offsets, before reading
    counts: Counter[str] = field(default_factory=Counter)


def tp_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def plan_objects(index: int, refs: list[object_source.ObjectRef], state: IngestState, plan: Plan,
                 configured_format: str = "auto") -> None:
    """Add one unit per object not in the ledger (or changed since); count the skipped ones.

    A changed plain JSON-lines object whose last read ended on a line end and that is not smaller now gets
    that read's resume point: the task reads on from it when the object only grew (`pipelines.sources.resume`),
    else reads it whole as a new version. Any other changed object is read whole as a new version.
    """
    for ref in refs:
        known = state.ledger.get(ref.uri)
        if known == (ref.size, ref.etag):
            plan.objects_skipped += 1
            continue
        unit: dict[str, Any] = {"kind": "object", "source": index, **ref.as_dict()}
        if known is not None:
            plan.objects_changed += 1
            unit["changed"] = True
            point = state.resume.get(ref.uri)
            fmt = detect_format(ref.uri, configured_format)
            if (point is not None and fmt is not None and resumable(fmt.kind, fmt.codec)
                    and point.read_bytes == known[0] <= ref.size):
                unit["resume"] = asdict(point)
                log.info("object changed since it was ingested, checking whether it only grew: %s", ref.uri)
            else:
                log.warning("object changed since it was ingested, reading it again as a new version: %s", ref.uri)
        plan.units.append(unit)


def plan_kafka(index: int, src: KafkaSource, earliest: dict[tuple[str, int], int], ends: dict[tuple[str, int], int],
               state: IngestState, plan: Plan) -> None:
    """Add offset-range units for one Kafka source and record its baseline offsets in `plan.offsets`."""
    label = src.label()
    stored = state.offsets.get(label, {})
    baseline = dict(stored)
    starts: dict[tuple[str, int], int] = {}
    for key in sorted(ends):
        first, k = earliest.get(key, 0), tp_key(*key)
        if k in stored:
            start = stored[k]
            if start < first or start > ends[key]:
                start = baseline[k] = _out_of_range(src, index, k, start, first, ends[key], plan)
        elif src.starting_offsets == "latest":
            start = baseline[k] = ends[key]
        else:
            start = first
        starts[key] = start
    plan.offsets[label] = baseline
    ranges = kafka_source.plan_ranges(starts, ends, max_records=src.max_records,
                                      records_per_task=src.records_per_task)
    share = -(-src.max_bytes // len(ranges)) if src.max_bytes and ranges else None
    for r in ranges:
        plan.units.append({"kind": "kafka", "source": index, **r.as_dict(), "max_bytes": share})


def _out_of_range(src: KafkaSource, index: int, k: str, stored: int, first: int, end: int, plan: Plan) -> int:
    """Where to start a partition whose stored offset lies outside [earliest, end]: by `src.reset`, fail
    naming the partition, or start at its earliest offset (counting what is skipped or read again)."""
    if stored < first:
        what = f"offsets {stored}..{first - 1} were deleted (retention) before they were ingested"
    else:
        what = f"the stored offset {stored} is past its end {end} (topic recreated or truncated?)"
    if src.reset == "fail":
        raise StageInputError(f"kafka source {src.label()}: partition {k}: {what}; set sources.{index}.reset: "
                              "earliest to go on from its earliest offset")
    log.warning("kafka source %s: partition %s: %s; reset: earliest, reading from offset %d", src.label(), k,
                what, first)
    plan.counts["kafka_offsets_lost" if stored < first else "kafka_offsets_reset"] += abs(first - stored)
    return first


def plan_run(sources: list[Source], state: IngestState) -> Plan:
    """List every source (objects on the driver, Kafka watermarks) and build the run's units."""
    plan = Plan(offsets=copy.deepcopy(state.offsets))
    for i, src in enumerate(sources):
        if isinstance(src, KafkaSource):
            earliest, ends = kafka_source.partition_offsets(src)
            plan_kafka(i, src, earliest, ends, state, plan)
        elif isinstance(src, S3Source):
            plan_objects(i, object_source.list_s3(src), state, plan, src.format)
        else:
            plan_objects(i, object_source.list_local(src), state, plan, src.format)
    return plan


@dataclass
class Outcome:
    """What the driver commits: files per table, counts, and the state after the run."""

    raw_files: list[str]
    quarantine_files: list[str]
    counts: dict[str, int]
    state: IngestState
    changed: bool


def settle(plan: Plan, results: list[dict[str, Any]], sources: list[Source], state: IngestState, run_id: str
           ) -> Outcome:
    """Accept task results: every object unit, and Kafka chunks in offset order up to the first incomplete one.

    Returns the files to commit, the counts (records_read = raw_docs + quarantined over accepted units) and the
    new state (ledger plus the accepted objects, offsets advanced to where accepted chunks stopped).
    """
    new = IngestState(ledger=dict(state.ledger), ledger_runs=dict(state.ledger_runs), resume=dict(state.resume),
                      offsets=copy.deepcopy(plan.offsets), committed_runs=set(state.committed_runs))
    accepted: list[dict[str, Any]] = []
    by_partition: dict[tuple[int, str, int], list[dict[str, Any]]] = defaultdict(list)
    deferred = appended = rewritten = 0
    for res in results:
        unit = res["unit"]
        if res.get("deferred"):
            deferred += 1  # not in the ledger: the next run reads it again
        elif unit["kind"] == "object":
            accepted.append(res)
            new.ledger[unit["uri"]] = (unit["size"], unit["etag"])
            new.ledger_runs[unit["uri"]] = run_id
            new.resume.pop(unit["uri"], None)
            if res.get("point"):
                new.resume[unit["uri"]] = ResumePoint(**res["point"])
            if unit.get("changed"):
                appended += bool(res.get("resumed"))
                rewritten += not res.get("resumed")
        else:
            by_partition[(unit["source"], unit["topic"], unit["partition"])].append(res)
    for (index, topic, partition), chunks in sorted(by_partition.items()):
        label = sources[index].label()
        chunks.sort(key=lambda r: r["unit"]["start"])
        offsets = new.offsets.setdefault(label, {})
        k = tp_key(topic, partition)
        expected = chunks[0]["unit"]["start"]
        for res in chunks:
            if res["unit"]["start"] != expected:
                break
            accepted.append(res)
            expected = res["next_offset"]
            offsets[k] = expected
            if not res["complete"]:
                break
    counts: Counter[str] = Counter({"records_read": 0, "raw_docs": 0, "quarantined": 0, "objects_read": 0,
                                    "objects_skipped": plan.objects_skipped, "bytes_read": 0})
    counts.update(plan.counts)
    if plan.objects_changed:
        counts["objects_changed"] = plan.objects_changed
    if deferred:
        counts["objects_deferred"] = deferred
    if appended:  # read on from where the last run stopped
        counts["objects_appended"] = appended
    if rewritten:  # read whole again as a new version (curate keeps the newest version of each doc_id)
        counts["objects_rewritten"] = rewritten
    for res in accepted:
        counts["raw_docs"] += res["raw_docs"]
        counts["quarantined"] += res["quarantined"]
        counts["records_read"] += res["raw_docs"] + res["quarantined"]
        counts["bytes_read"] += res["bytes_read"]
        counts["objects_read"] += res["unit"]["kind"] == "object"
        for code, n in res["errors"].items():
            counts[f"quarantine_{code}"] += n
    dropped = len(results) - len(accepted) - deferred
    if dropped:
        log.warning("%d Kafka chunk(s) follow an incomplete one; their records are left for the next run", dropped)
    changed = bool(accepted) or new.offsets != state.offsets
    return Outcome(raw_files=[f for r in accepted for f in r["raw_files"]],
                   quarantine_files=[f for r in accepted for f in r["quarantine_files"]],
                   counts=dict(counts), state=new, changed=changed)
