"""Resuming grown JSON-lines objects: the tracker's resume point, reading on from it, the rewrite rule, and
the planner's choice between resuming and reading a new version."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.sources.config import LocalSource
from pipelines.sources.objects import ObjectProgress, ObjectRef, ReadOptions, list_local, read_object
from pipelines.sources.plan import Plan, plan_objects, settle
from pipelines.sources.resume import BLOCK, ReadTracker, ResumePoint
from pipelines.sources.state import IngestState
from pipelines.sources.units import ObjectUnit, UnitResult

OPTS = ReadOptions(batch_rows=16)


def _lines(first: int, n: int, pad: int = 0) -> bytes:
    return b"".join(b'{"id": "d%d", "text": "doc %d %s"}\n' % (i, i, b"x" * pad) for i in range(first, first + n))


def _read(path: Path, point: ResumePoint | None = None) -> tuple[pa.Table, pa.Table, ObjectProgress]:
    (ref,) = list_local(LocalSource(path=str(path)))
    progress = ObjectProgress(resume_from=point)
    docs, bad = zip(*read_object(ref, "local", OPTS, progress), strict=True)
    return pa.concat_tables(docs), pa.concat_tables(bad), progress


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=3 * BLOCK // 2).map(lambda b: b.replace(b"\x00", b"\n")),
       cuts=st.lists(st.integers(0, 3 * BLOCK // 2), max_size=6))
def test_the_resume_point_does_not_depend_on_chunking(data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    tracker = ReadTracker()
    for a, b in zip(edges, edges[1:], strict=False):
        tracker.feed(data[a:b])
    point = tracker.point()
    end = data.rfind(b"\n") + 1
    n = min(end, BLOCK)
    assert point == ResumePoint(end, data[:end].count(b"\n"), hashlib.sha256(data[:n]).hexdigest(),
                                hashlib.sha256(data[end - n:end]).hexdigest())


def test_a_grown_object_is_read_on_from_its_last_line_end(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(_lines(0, 3000, pad=40))  # > 2 blocks: head and tail blocks differ
    docs, bad, first = _read(path)
    assert docs.num_rows == 3000 and bad.num_rows == 0 and not first.resumed
    assert first.point is not None and (first.point.read_bytes, first.point.read_lines) == (path.stat().st_size, 3000)
    with path.open("ab") as f:
        f.write(_lines(3000, 20) + b"not json\n")
    docs, bad, second = _read(path, first.point)
    assert second.resumed
    assert docs.column("doc_id").to_pylist() == [f"d{i}" for i in range(3000, 3020)]
    assert docs.column("source_offset").to_pylist() == list(range(3000, 3020))
    assert bad.column("source_offset").to_pylist() == [3020] and bad.column("error_code").to_pylist() == ["malformed_json"]
    assert second.point is not None and second.point.read_lines == 3021
    assert second.point.head_sha256 == first.point.head_sha256


def test_a_changed_head_or_tail_block_means_a_rewritten_object(tmp_path: Path) -> None:
    for where in (0, -10):  # a byte in the head block, then one in the tail block
        path = tmp_path / f"a{where}.jsonl"
        path.write_bytes(_lines(0, 3000, pad=40))
        _, _, first = _read(path)
        data = bytearray(path.read_bytes())
        data[where] = ord("Z") if data[where] != ord("Z") else ord("Y")
        path.write_bytes(bytes(data) + _lines(3000, 5))
        docs, bad, again = _read(path, first.point)
        assert not again.resumed
        assert docs.num_rows + bad.num_rows == 3005  # the whole new version
        offsets = docs.column("source_offset").to_pylist() + bad.column("source_offset").to_pylist()
        assert sorted(offsets) == list(range(3005))


def test_a_small_object_resumes_too(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(_lines(0, 2))
    _, _, first = _read(path)
    path.write_bytes(_lines(0, 3))
    docs, _, again = _read(path, first.point)
    assert again.resumed and docs.column("doc_id").to_pylist() == ["d2"]


def test_a_read_stops_at_the_listed_size(tmp_path: Path) -> None:
    """What a writer appends between listing and reading is left for the next run."""
    path = tmp_path / "g.jsonl"
    path.write_bytes(_lines(0, 10))
    (ref,) = list_local(LocalSource(path=str(path)))
    with path.open("ab") as f:
        f.write(_lines(10, 5))
    progress = ObjectProgress()
    docs = pa.concat_tables([d for d, _ in read_object(ref, "local", OPTS, progress)])
    assert docs.num_rows == 10 and progress.point is not None and progress.point.read_bytes == ref.size


def _point(size: int) -> ResumePoint:
    return ResumePoint(size, 5, "h", "t")


def test_the_planner_resumes_only_plain_jsonl_read_to_a_line_end() -> None:
    state = IngestState(ledger={"file:///a.jsonl": (100, "e"), "file:///b.jsonl": (100, "e"),
                                "file:///c.jsonl.gz": (100, "e"), "file:///d.jsonl": (100, "e")},
                        resume={"file:///a.jsonl": _point(100), "file:///b.jsonl": _point(90),
                                "file:///c.jsonl.gz": _point(100), "file:///d.jsonl": _point(100)})
    refs = [ObjectRef("file:///a.jsonl", 150, "e2"), ObjectRef("file:///b.jsonl", 150, "e2"),
            ObjectRef("file:///c.jsonl.gz", 150, "e2"), ObjectRef("file:///d.jsonl", 50, "e2")]
    plan = Plan()
    plan_objects(0, refs, state, plan)
    units = [u for u in plan.units if isinstance(u, ObjectUnit)]
    assert [u.uri for u in units if u.resume is not None] == ["file:///a.jsonl"]  # b: its last line had no end
    assert all(u.changed for u in units) and plan.objects_changed == 4
    results = [UnitResult(unit=u, raw_docs=1, bytes_read=1, resumed=u.resume is not None,
                          point=_point(150) if u.uri != "file:///c.jsonl.gz" else None) for u in units]
    out = settle(plan, results, [LocalSource(path="/x")], state, "r2")
    assert (out.counts["objects_appended"], out.counts["objects_rewritten"]) == (1, 3)
    assert sorted(out.state.resume) == ["file:///a.jsonl", "file:///b.jsonl", "file:///d.jsonl"]
    assert out.state.resume["file:///a.jsonl"].read_bytes == 150 and out.state.ledger_runs["file:///a.jsonl"] == "r2"
