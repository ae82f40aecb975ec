"""Planning Kafka ranges and object units, and settling task results into commits and the next state."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.errors import StageInputError
from pipelines.sources.config import KafkaSource, LocalSource
from pipelines.sources.kafka import plan_ranges
from pipelines.sources.objects import ObjectRef
from pipelines.sources.plan import Plan, plan_kafka, plan_objects, settle
from pipelines.sources.state import IngestState
from pipelines.sources.tasks import pack_units
from pipelines.sources.units import KafkaUnit, ObjectUnit, Unit, UnitResult

KAFKA = KafkaSource(bootstrap="b:9092", topics=["t"], name="k")


@settings(max_examples=200, deadline=None)
@given(avail=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 60)), min_size=1, max_size=6),
       max_records=st.one_of(st.none(), st.integers(1, 200)), per_task=st.integers(1, 25))
def test_ranges_cover_available_offsets_within_the_bound(avail, max_records, per_task) -> None:
    starts = {("t", i): s for i, (s, _) in enumerate(avail)}
    ends = {("t", i): s + n for i, (s, n) in enumerate(avail)}
    ranges = plan_ranges(starts, ends, max_records=max_records, records_per_task=per_task)
    total = sum(r.end - r.start for r in ranges)
    available = sum(n for _, n in avail)
    assert total == (available if max_records is None else min(available, max_records))
    by_part: dict[int, list] = {}
    for r in ranges:
        assert 0 < r.end - r.start <= per_task
        by_part.setdefault(r.partition, []).append(r)
    for p, rs in by_part.items():
        assert rs[0].start == starts[("t", p)]  # ranges of a partition are contiguous from its start
        for a, b in zip(rs, rs[1:], strict=False):
            assert a.end == b.start
        assert rs[-1].end <= ends[("t", p)]


def test_fair_share_of_the_record_bound() -> None:
    ranges = plan_ranges({("t", 0): 0, ("t", 1): 0, ("t", 2): 0}, {("t", 0): 2, ("t", 1): 100, ("t", 2): 100},
                         max_records=12, records_per_task=100)
    assert [(r.partition, r.end - r.start) for r in ranges] == [(0, 2), (1, 5), (2, 5)]


def test_kafka_start_stored_latest_and_retention() -> None:
    state = IngestState(offsets={"k": {"t/0": 3, "t/1": 1}})
    with pytest.raises(StageInputError, match=r"partition t/1: offsets 1\.\.4 were deleted .*sources\.0\.reset"):
        plan_kafka(0, KAFKA, {("t", 0): 0, ("t", 1): 5}, {("t", 0): 10, ("t", 1): 8}, state, Plan())
    plan = Plan()
    resetting = KAFKA.model_copy(update={"reset": "earliest"})
    plan_kafka(0, resetting, {("t", 0): 0, ("t", 1): 5}, {("t", 0): 10, ("t", 1): 8}, state, plan)
    assert [(u.partition, u.start, u.end) for u in plan.units] == [(0, 3, 10), (1, 5, 8)]
    assert plan.counts["kafka_offsets_lost"] == 4


def test_a_stored_offset_past_the_end_is_a_recreated_topic() -> None:
    state = IngestState(offsets={"k": {"t/0": 50}})
    with pytest.raises(StageInputError, match=r"partition t/0: the stored offset 50 is past its end 20"):
        plan_kafka(0, KAFKA, {("t", 0): 0}, {("t", 0): 20}, state, Plan())
    plan = Plan()
    plan_kafka(0, KAFKA.model_copy(update={"reset": "earliest"}), {("t", 0): 0}, {("t", 0): 20}, state, plan)
    assert [(u.start, u.end) for u in plan.units] == [(0, 20)]
    assert plan.offsets == {"k": {"t/0": 0}} and plan.counts["kafka_offsets_reset"] == 50
    latest = KafkaSource(bootstrap="b:9092", topics=["t"], name="k", starting_offsets="latest")
    plan = Plan()
    plan_kafka(0, latest, {("t", 0): 0}, {("t", 0): 10}, IngestState(), plan)
    assert plan.units == [] and plan.offsets == {"k": {"t/0": 10}}


def _kafka_result(start: int, end: int, next_offset: int, n: int) -> UnitResult:
    unit = KafkaUnit(source=0, topic="t", partition=0, start=start, end=end, max_bytes=None)
    return UnitResult(unit=unit, raw_files=[f"raw-{start}"], quarantine_files=[], raw_docs=n, quarantined=0,
                      errors={}, bytes_read=n, next_offset=next_offset, complete=next_offset >= end)


def test_settle_stops_at_the_first_incomplete_chunk() -> None:
    plan = Plan()
    results = [_kafka_result(20, 30, 30, 10), _kafka_result(0, 10, 10, 10), _kafka_result(10, 20, 15, 5)]
    out = settle(plan, results, [KAFKA], IngestState(), "run")
    assert out.raw_files == ["raw-0", "raw-10"]
    assert out.state.offsets == {"k": {"t/0": 15}}
    assert out.counts["records_read"] == 15 and out.changed


def test_objects_in_the_ledger_are_skipped_and_changed_ones_read_again() -> None:
    state = IngestState(ledger={"file:///a": (1, "e1"), "file:///b": (2, "e2")})
    plan = Plan()
    refs = [ObjectRef("file:///a", 1, "e1"), ObjectRef("file:///b", 2, "NEW"), ObjectRef("file:///c", 3, "e3")]
    plan_objects(0, refs, state, plan)
    assert [u.uri for u in plan.units] == ["file:///b", "file:///c"]
    assert (plan.objects_skipped, plan.objects_changed) == (1, 1)
    results = [UnitResult(unit=u, raw_files=[], quarantine_files=[], raw_docs=1, quarantined=0,
                          errors={}, bytes_read=u.size) for u in plan.units if isinstance(u, ObjectUnit)]
    out = settle(plan, results, [LocalSource(path="/x")], state, "r2")
    assert out.state.ledger == {"file:///a": (1, "e1"), "file:///b": (2, "NEW"), "file:///c": (3, "e3")}
    assert out.counts["objects_read"] == 2 and out.counts["objects_skipped"] == 1 and out.counts["bytes_read"] == 5


def test_nothing_new_is_no_change() -> None:
    out = settle(Plan(offsets={"k": {"t/0": 5}}), [], [KAFKA], IngestState(offsets={"k": {"t/0": 5}}), "r")
    assert not out.changed and out.counts["records_read"] == 0


@given(sizes=st.lists(st.integers(0, 1000), max_size=40), n=st.integers(1, 9))
def test_pack_units_places_each_unit_once(sizes: list[int], n: int) -> None:
    units: list[Unit] = [ObjectUnit(source=0, uri=str(i), size=s, etag="") for i, s in enumerate(sizes)]
    groups = pack_units(units, n)
    assert len(groups) == min(n, len(units)) and all(groups)
    assert sorted(u.uri for g in groups for u in g if isinstance(u, ObjectUnit)) == sorted(str(i) for i in range(len(units)))
