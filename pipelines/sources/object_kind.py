"""The object kind: local folders and S3 prefixes (listing in `listing`, reading in `objects`).

Planning skips objects the ledger holds with the same size and ETag; a plain JSON-lines object that only
grew is read on from where the last run stopped (`pipelines.sources.resume`); any other changed object is
read whole again as a new version (its old rows stay: ingest appends, and curate keeps the newest version
of each doc_id). Settling records every read object in the ledger.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pipelines.sources.config import LocalSource, S3Source
from pipelines.sources.formats import detect_format
from pipelines.sources.kinds import Reading
from pipelines.sources.listing import ObjectRef, list_local, list_s3
from pipelines.sources.objects import ObjectProgress, ReadOptions, read_object
from pipelines.sources.resume import resumable
from pipelines.sources.state import IngestState
from pipelines.sources.units import ObjectUnit, Unit, UnitResult
from pipelines.storage import S3Options

if TYPE_CHECKING:
    from pipelines.sources.plan import Plan, Source
    from pipelines.sources.tasks import TaskContext

log = logging.getLogger(__name__)


def plan_objects(index: int, refs: list[ObjectRef], state: IngestState, plan: Plan,
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
        unit = ObjectUnit(source=index, uri=ref.uri, size=ref.size, etag=ref.etag, path=ref.path)
        if known is not None:
            plan.objects_changed += 1
            point = state.resume.get(ref.uri)
            fmt = detect_format(ref.uri, configured_format)
            if (point is not None and fmt is not None and resumable(fmt.kind, fmt.codec)
                    and point.read_bytes == known[0] <= ref.size):
                unit = replace(unit, changed=True, resume=point)
                log.info("object changed since it was ingested, checking whether it only grew: %s", ref.uri)
            else:
                unit = replace(unit, changed=True)
                log.warning("object changed since it was ingested, reading it again as a new version: %s", ref.uri)
        plan.units.append(unit)


def read_options(src: LocalSource | S3Source, max_record_bytes: int, raw_limit: int, max_expansion: int
                 ) -> ReadOptions:
    return ReadOptions(format=src.format, id_field=src.id_field, text_field=src.text_field,
                       max_record_bytes=max_record_bytes, raw_limit=raw_limit, max_expansion=max_expansion,
                       s3=src.s3_options() if isinstance(src, S3Source) else S3Options())


class ObjectKind:
    """Local and S3 objects, one unit per new or changed object."""

    name = "object"
    source_types = ("local", "s3")

    def plan(self, index: int, src: Source, state: IngestState, plan: Plan) -> None:
        if isinstance(src, S3Source):
            plan_objects(index, list_s3(src), state, plan, src.format)
        elif isinstance(src, LocalSource):
            plan_objects(index, list_local(src), state, plan, src.format)
        else:
            raise TypeError(f"object kind: cannot list a {src.type} source")

    def read(self, unit: Unit, src: Source, ctx: TaskContext) -> Reading:
        if not isinstance(unit, ObjectUnit) or not isinstance(src, LocalSource | S3Source):
            raise TypeError(f"object kind: cannot read {unit!r} of a {src.type} source")
        progress = ObjectProgress(resume_from=unit.resume)
        opts = read_options(src, ctx.max_record_bytes, ctx.raw_limit, ctx.max_expansion)

        def outcome() -> dict[str, Any]:
            start = unit.resume.read_bytes if progress.resumed and unit.resume else 0
            return {"bytes_read": unit.size - start, "resumed": progress.resumed, "point": progress.point}

        ref = ObjectRef(unit.uri, unit.size, unit.etag, unit.path)
        return Reading(read_object(ref, src.type, opts, progress), outcome)

    def settle(self, results: list[UnitResult], sources: list[Source], state: IngestState, run_id: str,
               counts: Counter[str]) -> list[UnitResult]:
        """Every object read is accepted and recorded in the ledger (with where its read stopped)."""
        for res in results:
            unit = res.unit
            assert isinstance(unit, ObjectUnit)
            state.ledger[unit.uri] = (unit.size, unit.etag)
            state.ledger_runs[unit.uri] = run_id
            state.resume.pop(unit.uri, None)
            if res.point is not None:
                state.resume[unit.uri] = res.point
            counts["objects_read"] += 1
            if unit.changed:  # read on from where the last run stopped, or whole again as a new version
                counts["objects_appended" if res.resumed else "objects_rewritten"] += 1
        return results
