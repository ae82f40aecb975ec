"""The Kafka kind: offset ranges of topic partitions (reading in `kafka`).

Partitions start at the stored next offset, else at `starting_offsets`; a stored offset outside the
partition's range (below its earliest: lost to retention; past its end: the topic was recreated or
truncated) stops the run naming the partition, or with `reset: earliest` starts at the earliest offset
(counted as `kafka_offsets_lost` / `kafka_offsets_reset`). Chunks of one partition are accepted in offset
order up to the first incomplete one, so the stored offset never passes a record that is not committed.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from pipelines.errors import StageInputError
from pipelines.sources import kafka as kafka_source
from pipelines.sources.config import KafkaSource
from pipelines.sources.kinds import Reading
from pipelines.sources.state import IngestState
from pipelines.sources.units import KafkaUnit, Unit, UnitResult

if TYPE_CHECKING:
    from pipelines.sources.plan import Plan, Source
    from pipelines.sources.tasks import TaskContext

log = logging.getLogger(__name__)


def tp_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


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
        plan.units.append(KafkaUnit(source=index, topic=r.topic, partition=r.partition, start=r.start, end=r.end,
                                    max_bytes=share))


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


class KafkaKind:
    """Kafka topics, one unit per chunk of a partition's new offsets."""

    name = "kafka"
    source_types = ("kafka",)

    def plan(self, index: int, src: Source, state: IngestState, plan: Plan) -> None:
        if not isinstance(src, KafkaSource):
            raise TypeError(f"kafka kind: cannot plan a {src.type} source")
        earliest, ends = kafka_source.partition_offsets(src)
        plan_kafka(index, src, earliest, ends, state, plan)

    def read(self, unit: Unit, src: Source, ctx: TaskContext) -> Reading:
        if not isinstance(unit, KafkaUnit) or not isinstance(src, KafkaSource):
            raise TypeError(f"kafka kind: cannot read {unit!r} of a {src.type} source")
        rr = kafka_source.RangeResult(next_offset=unit.start)
        rng = kafka_source.OffsetRange(unit.topic, unit.partition, unit.start, unit.end)

        def outcome() -> dict[str, Any]:
            return {"next_offset": rr.next_offset, "complete": rr.complete, "bytes_read": rr.bytes_read}

        return Reading(kafka_source.read_range(src, rng, rr, max_bytes=unit.max_bytes,
                                               max_record_bytes=ctx.max_record_bytes, raw_limit=ctx.raw_limit),
                       outcome)

    def settle(self, results: list[UnitResult], sources: list[Source], state: IngestState, run_id: str,
               counts: Counter[str]) -> list[UnitResult]:
        """Chunks of each partition in offset order, up to the first incomplete one; the stored next offset
        advanced to where the accepted chunks stopped."""
        by_partition: dict[tuple[int, str, int], list[UnitResult]] = defaultdict(list)
        for res in results:
            unit = res.unit
            assert isinstance(unit, KafkaUnit)
            by_partition[(unit.source, unit.topic, unit.partition)].append(res)
        accepted: list[UnitResult] = []
        for (index, topic, partition), chunks in sorted(by_partition.items()):
            chunks.sort(key=lambda r: r.unit.start if isinstance(r.unit, KafkaUnit) else 0)
            offsets = state.offsets.setdefault(sources[index].label(), {})
            expected = chunks[0].unit.start if isinstance(chunks[0].unit, KafkaUnit) else 0
            for res in chunks:
                if not isinstance(res.unit, KafkaUnit) or res.unit.start != expected or res.next_offset is None:
                    break
                accepted.append(res)
                expected = offsets[tp_key(topic, partition)] = res.next_offset
                if not res.complete:
                    break
        dropped = len(results) - len(accepted)
        if dropped:
            log.warning("%d Kafka chunk(s) follow an incomplete one; their records are left for the next run",
                        dropped)
        return accepted
