"""The curate stage's outputs written in one pass: each partition of the decided rows becomes one data file of
doc_decisions (every row), one of clean_docs (the kept rows) and, with near dedup on, one of dedup_index (the
kept rows' signatures), inside the task that holds it; the driver then commits them in order
(pipelines.stages.curate.spark). Nothing here is committed, and a killed task leaves no file a commit names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dedup.config import DedupConfig
from dedup.local import signature_rows
from pipelines import lake
from pipelines.storage import S3Options

# what a writing task returns: per decisions file one row per (decision, reason) and its count, per other file
# one row with its row count (decision and reason null)
OUTPUTS_ARROW = pa.schema([("output", pa.string()), ("path", pa.string()), ("decision", pa.string()),
                           ("reason", pa.string()), ("n", pa.int64())])


# columns a decided row has besides the curated row's (whose `reason` becomes the decision's reason)
DECIDED_EXTRA = pa.schema([("cluster_id", pa.string()), ("kept_doc_id", pa.string()), ("similarity", pa.float64()),
                           ("verified_by", pa.string()), ("decision", pa.string()), ("cluster_size", pa.int64())])


def decide_batch(curated: pa.Table, dups: pa.Table) -> pa.Table:
    """Decisions of curated rows (reason null: passed the filters) given the removed documents `dups`
    (DUPLICATE_SCHEMA, all of this run's): filtered (its reason), duplicate (`dup_reason`, its cluster,
    kept document, similarity, evidence) or kept with cluster_size = 1 + the duplicates naming it. The
    curated columns and DECIDED_EXTRA, in that order."""
    ids = curated["doc_id"].combine_chunks().cast(pa.string())
    at = pc.index_in(ids, value_set=dups["doc_id"].combine_chunks())
    dup_reason = dups["dup_reason"].combine_chunks().take(at)
    sizes = dups.group_by("kept_doc_id", use_threads=False).aggregate([([], "count_all")])
    n_dups = pc.fill_null(sizes["count_all"].combine_chunks().take(
        pc.index_in(ids, value_set=sizes["kept_doc_id"].combine_chunks())), 0)
    reason = curated["reason"].combine_chunks()
    decision = pc.if_else(pc.is_valid(reason), "filtered", pc.if_else(pc.is_valid(dup_reason), "duplicate", "kept"))
    out = curated.set_column(curated.schema.get_field_index("reason"), "reason", pc.coalesce(reason, dup_reason))
    extra = {name: dups[name].combine_chunks().take(at) for name in ("cluster_id", "kept_doc_id", "similarity",
                                                                       "verified_by")}
    extra["decision"] = decision
    extra["cluster_size"] = pc.if_else(pc.equal(decision, "kept"), pc.add(n_dups.cast(pa.int64()), 1),
                                       pa.scalar(None, pa.int64()))
    for f in DECIDED_EXTRA:
        out = out.append_column(f, extra[f.name].cast(f.type))
    return out


@dataclass(frozen=True)
class OutputFiles:
    """Where a table's data files go: its data folder (URI), its file schema (with field ids), S3 settings."""

    directory: str
    schema: pa.Schema
    s3: S3Options | None


def outputs_writer(where: dict[str, OutputFiles], dedup: DedupConfig | None, prefix: str
                   ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """mapInArrow function writing a partition's outputs to `where` (doc_decisions, clean_docs, and with
    `dedup` dedup_index), files named `prefix`-…; yields OUTPUTS_ARROW rows. An empty partition writes nothing."""

    def write(name: str, rows: pa.Table) -> tuple[str, int] | None:
        out = where[name]
        path = lake.write_data_file(out.directory, rows.select(out.schema.names).cast(out.schema), prefix=prefix,
                                    s3=out.s3)
        return None if path is None else (path, rows.num_rows)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pieces = [b for b in batches if b.num_rows]
        if not pieces:
            return
        decided = pa.Table.from_batches(pieces)
        written = write("doc_decisions", decided)
        if written is not None:
            groups = decided.group_by(["decision", "reason"], use_threads=False).aggregate([([], "count_all")])
            n = groups.num_rows
            yield from pa.table([["doc_decisions"] * n, [written[0]] * n, groups["decision"],
                                 groups["reason"], groups["count_all"]], schema=OUTPUTS_ARROW).to_batches()
        kept = decided.filter(pc.equal(decided["decision"], "kept"))
        derived = {"clean_docs": kept}
        if dedup is not None:
            derived["dedup_index"] = signature_rows(kept, dedup)
        for name, rows in derived.items():
            file = write(name, rows)
            if file is not None:
                yield pa.RecordBatch.from_pylist([{"output": name, "path": file[0], "decision": None, "reason": None,
                                                   "n": file[1]}], schema=OUTPUTS_ARROW)

    return run


def tally(rows: list[dict[str, Any]]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(data files per table, counts) of the OUTPUTS_ARROW rows of every task: counts raw_docs, kept,
    filtered, duplicate, `<decision>_<reason>`, clean_rows and index_rows (rows written to those tables)."""
    files: dict[str, set[str]] = {"doc_decisions": set(), "clean_docs": set(), "dedup_index": set()}
    totals: dict[tuple[str, str], int] = {}
    counts = {"raw_docs": 0, "kept": 0, "filtered": 0, "duplicate": 0, "clean_rows": 0, "index_rows": 0}
    for r in rows:
        files[r["output"]].add(r["path"])
        if r["output"] == "doc_decisions":
            key = (r["decision"], r["reason"] or "")
            totals[key] = totals.get(key, 0) + r["n"]
        else:
            counts["clean_rows" if r["output"] == "clean_docs" else "index_rows"] += r["n"]
    for (decision, reason), n in sorted(totals.items()):
        counts["raw_docs"] += n
        counts[decision] += n
        if reason:
            counts[f"{decision}_{reason}"] = n
    return {name: sorted(paths) for name, paths in files.items()}, counts
