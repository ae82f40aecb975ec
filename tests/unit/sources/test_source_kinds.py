"""The source-kind registry: its contract checks, the lookup by source type and unit, and a kind plugged in
from outside the package running through planning, a task and settling (no Spark needed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.sources import kinds, tasks
from pipelines.sources.config import KafkaSource, LocalSource, S3Source
from pipelines.sources.kinds import Reading
from pipelines.sources.plan import Plan, plan_run, settle
from pipelines.sources.records import decode_text_values, split_decoded
from pipelines.sources.state import IngestState
from pipelines.sources.units import UnitResult


def test_builtin_kinds_serve_every_source_type() -> None:
    assert list(kinds.registered()) == ["object", "kafka"]
    assert kinds.for_source(LocalSource(path="/x")).name == "object"
    assert kinds.for_source(S3Source(uri="s3://b/p")).name == "object"
    assert kinds.for_source(KafkaSource(bootstrap="b:1", topics=["t"])).name == "kafka"


def test_the_contract_is_checked_when_registering() -> None:
    class NoRead:
        name, source_types = "broken", ("broken",)

        def plan(self, *a: object) -> None: ...

        def settle(self, *a: object) -> list[UnitResult]: return []

    with pytest.raises(TypeError, match="needs name, source_types, plan, read and settle"):
        kinds.register(NoRead())  # type: ignore[arg-type]
    taken = kinds.registered()["object"]
    with pytest.raises(ValueError, match="source types \\['local'\\] are served by kind 'object'"):
        kinds.register(_LineCountKind())
    assert kinds.register(taken) is taken  # the same kind again: a no-op


@dataclass(frozen=True)
class LineCountUnit:
    """One file, ingested as a single document saying how many lines it has."""

    kind: ClassVar[str] = "line_count"
    source: int
    path: str

    def weight(self) -> int:
        return 1

    def records(self) -> int:
        return 1


class _LineCountKind:
    """A toy kind for local folders: one document per file, no ledger (every run reads every file)."""

    name = "line_count"
    source_types = ("local",)

    def plan(self, index: int, src: Any, state: IngestState, plan: Plan) -> None:
        plan.units += [LineCountUnit(index, str(p)) for p in sorted(Path(src.path).iterdir())]  # type: ignore[arg-type]

    def read(self, unit: Any, src: Any, ctx: tasks.TaskContext) -> Reading:
        n = Path(unit.path).read_bytes().count(b"\n")
        text = f"{n} lines".encode()

        def batches() -> Iterator[tuple[pa.Table, pa.Table]]:
            dec = decode_text_values([text], [len(text)], max_record_bytes=ctx.max_record_bytes)
            yield split_decoded(dec.to_arrow(), source_type="local", source_uri=f"file://{unit.path}",
                                source_partition=None, source_offset=[0], default_ids=[unit.path], raw=[text],
                                raw_size=[len(text)], raw_limit=ctx.raw_limit)

        return Reading(batches(), lambda: {"bytes_read": len(text)})

    def settle(self, results: list[UnitResult], sources: list[Any], state: IngestState, run_id: str,
               counts: Counter[str]) -> list[UnitResult]:
        counts["files_counted"] += len(results)
        return results


def test_a_kind_plugged_in_from_outside_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("x\ny\n")
    (folder / "b.txt").write_text("z\n")
    kafka_kind = kinds.registered()["kafka"]
    monkeypatch.setattr(kinds, "_KINDS", {})  # in place of the built-ins for this test (restored after it)
    kinds.register(_LineCountKind())
    kinds.register(kafka_kind)
    assert kinds.for_source(LocalSource(path=str(folder))).name == "line_count"
    src = LocalSource(path=str(folder))
    plan = plan_run([src], IngestState())
    assert plan.units == [LineCountUnit(0, str(folder / "a.txt")), LineCountUnit(0, str(folder / "b.txt"))]
    ctx = tasks.TaskContext(sources=(src,), run_id="r" * 32, ingested_at=datetime.now(UTC),
                            raw_dir=f"file://{tmp_path}/raw", quarantine_dir=f"file://{tmp_path}/q",
                            max_record_bytes=1 << 20, raw_limit=64, file_bytes=1 << 20)
    results = [tasks.run_unit(u, ctx) for u in plan.units]  # type: ignore[arg-type]
    out = settle(plan, results, [src], IngestState(), "r" * 32)
    assert (out.counts["files_counted"], out.counts["raw_docs"], out.counts["records_read"]) == (2, 2, 2)
    assert len(out.raw_files) == 2 and out.changed
    texts = sorted(pq.read_table(f.removeprefix("file://")).column("text")[0].as_py() for f in out.raw_files)
    assert texts == ["1 lines", "2 lines"]
