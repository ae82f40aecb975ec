"""Spark adapter of incremental dedup: a new batch against itself and against earlier kept documents.

Earlier kept documents come as clean_docs (doc_id, exact_hash) for exact dedup and as dedup_index rows
(doc_id, signature, band_keys) for near dedup. The keep rule of dedup/incremental/__init__.py applies: old documents
always stay kept; a new document clustered with old ones becomes a duplicate of the smallest old doc_id in
its cluster; clusters of new documents only use cfg.keep. Both functions return DataFrame(doc_id, cluster_id,
kept_doc_id, similarity, verified_by) with one row per removed *new* document, cluster_id being the final
cluster's smallest doc_id. Near dedup resolves components by direct evidence with the old documents pinned
(dedup.resolve), as dedup.incremental's local engine does.

Cost: exact dedup joins the batch's hashes with the old ones (a semi-join, then a group by); near dedup
explodes the index's band keys once, keeps the old documents sharing a bucket with a new one, and runs the
ordinary candidate_edges and the same components-and-resolve tail as full dedup
(`dedup.resolve.spark.resolve_candidate_graph`: components on the driver when the edge list is small,
steps persisted when the caller gives a folder) on the batch plus those few old documents.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dedup.config import DedupConfig
from dedup.incremental.local import band_hits, duplicates_against_index_local
from dedup.keep import parse_keep_rule
from dedup.local import DUPLICATE_SCHEMA, SIGNATURE_ARROW, component_stats, signature_columns
from dedup.resolve.spark import resolve_candidate_graph
from dedup.spark import (
    DUPLICATE_DDL,
    DUPLICATE_TYPE,
    _keep_order,
    candidate_edges,
    combine_duplicates,
    fits_one_task,
    signatures,
)
from dedup.steps.spark import ColumnReader, Steps, checkpoint

log = logging.getLogger(__name__)


def resolve_against_old(members: DataFrame, new: DataFrame, keep: list[str]) -> DataFrame:
    """members(doc_id, cluster_id) over new and old documents -> removed new rows (RESULT_COLUMNS).

    `new` holds the new documents (doc_id, keep-rule columns); every member not in `new` is old. Each
    cluster keeps its smallest old doc_id when it has an old member, else its keep-rule winner.
    """
    ranked_new = new.select("doc_id", F.lit(True).alias("is_new"), _keep_order(new, keep).alias("k"))
    ranked = (
        members.join(ranked_new, "doc_id", "left")
        .withColumn("is_new", F.coalesce("is_new", F.lit(False)))
        # False < True: an old member wins before the keep rule is looked at; old members tie on k (null)
        .withColumn("r", F.struct("is_new", "k", F.col("doc_id").alias("id")))
    )
    winners = ranked.groupBy("cluster_id").agg(F.min("r").getField("id").alias("kept_doc_id"))
    return (
        ranked.where(F.col("is_new")).join(winners, "cluster_id")
        .where(F.col("doc_id") != F.col("kept_doc_id"))
        .select("doc_id", "cluster_id", "kept_doc_id", F.lit(1.0).alias("similarity"),
                F.lit("exact_hash").alias("verified_by"))
    )


def exact_duplicates_incremental(new: DataFrame, old: DataFrame, *, keep: list[str]) -> DataFrame:
    """New documents sharing exact_hash with an old kept document or with another new one, less the kept.

    `new`: doc_id, exact_hash, keep-rule columns; `old`: doc_id, exact_hash of earlier kept documents (ids
    disjoint from `new`). Null hashes take no part.
    """
    _keep_order(new, keep)  # validate the rule before any work
    hashed = new.where(F.col("exact_hash").isNotNull()).select("doc_id", "exact_hash")
    old_hit = (
        old.where(F.col("exact_hash").isNotNull()).select("doc_id", "exact_hash")
        .join(hashed.select("exact_hash").distinct(), "exact_hash", "left_semi")
    )
    both = hashed.unionByName(old_hit)
    groups = (
        both.groupBy("exact_hash")
        .agg(F.count(F.lit(1)).alias("n"), F.min("doc_id").alias("cluster_id"))
        .where(F.col("n") > 1).select("exact_hash", "cluster_id")
    )
    members = both.join(groups, "exact_hash").select("doc_id", "cluster_id")
    return resolve_against_old(members, new, keep)


def near_duplicates_incremental(new: DataFrame, index: DataFrame, *, cfg: DedupConfig,
                                checkpoint_dir: str | None = None, stats: dict[str, int] | None = None,
                                steps: Steps | None = None) -> DataFrame:
    """MinHash-LSH near duplicates of `new` (doc_id, text or signature/band_keys, keep-rule columns) among
    themselves and against `index` (dedup_index rows of earlier kept documents, same parameters, ids disjoint
    from `new`).

    Edges between two old documents are dropped: old documents were settled when they were kept and must
    not be merged into one cluster with each other. Signatures, edges and components are materialized here
    (persisted `steps` when given: `signatures` unless the input has them, `edges`, `components`).
    """
    _keep_order(new, cfg.keep)
    persisted = steps is not None and steps.folder is not None

    def step(name: str, compute: Callable[[], DataFrame]) -> DataFrame:
        return steps.materialize(name, compute) if persisted and steps is not None else checkpoint(
            compute(), checkpoint_dir)

    new_sigs = signatures(new, cfg) if "signature" in new.columns else step("signatures", lambda: signatures(new, cfg))
    new_keys = new_sigs.select(F.posexplode("band_keys").alias("band", "key")).distinct()
    old_ids = step("old-ids", lambda: (
        index.select("doc_id", F.posexplode("band_keys").alias("band", "key"))
        .join(new_keys, ["band", "key"], "left_semi").select("doc_id").distinct()))
    old_sigs = index.join(old_ids, "doc_id", "left_semi").select("doc_id", "signature", "band_keys")
    both = new_sigs.unionByName(old_sigs)

    def fresh_edges() -> DataFrame:
        old_a = old_ids.select(F.col("doc_id").alias("a"), F.lit(True).alias("a_old"))
        old_b = old_ids.select(F.col("doc_id").alias("b"), F.lit(True).alias("b_old"))
        return (
            candidate_edges(both, cfg).join(old_a, "a", "left").join(old_b, "b", "left")
            .where(~(F.coalesce("a_old", F.lit(False)) & F.coalesce("b_old", F.lit(False))))
            .select("a", "b")
        )

    edges = step("edges", fresh_edges)
    return resolve_candidate_graph(edges, both, new, cfg=cfg, checkpoint_dir=checkpoint_dir, stats=stats,
                                   steps=steps, old=old_ids)


# rows of earlier kept documents that a new batch can meet, as one DataFrame: `(kind, match)` -> the rows of
# kind "hashes" (doc_id, exact_hash of clean_docs) or "index" (dedup_index rows) whose key column (exact_hash,
# band_keys) `match` wants (a picklable function of the key columns returning a boolean mask)
OldRows = Callable[[str, Callable[[pa.Table], np.ndarray]], DataFrame]


def old_rows_of(old_hashes: DataFrame, index: DataFrame) -> OldRows:
    """OldRows of two DataFrames, (doc_id, exact_hash) and dedup_index rows, each filtered in the tasks that
    compute it. A caller that reads the old rows from tables does better with a reader that filters as it
    reads (pipelines.lake.files.spark.read_matching_df: the other columns only of row groups that match)."""
    frames = {"hashes": old_hashes.select("doc_id", "exact_hash"), "index": index.select(*SIGNATURE_ARROW.names)}

    def rows(kind: str, match: Callable[[pa.Table], np.ndarray]) -> DataFrame:
        frame = frames[kind]
        return frame.mapInArrow(_rows_matching(match), frame.schema)

    return rows


def _rows_matching(match: Callable[[pa.Table], np.ndarray]
                   ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            hit = pa.array(match(pa.Table.from_batches([batch]))) if batch.num_rows else None
            if hit is not None and pc.any(hit).as_py():
                yield batch.filter(hit)

    return run


def is_in_match(column: str, values: pa.Array) -> Callable[[pa.Table], np.ndarray]:
    """A match (see OldRows) of the rows whose `column` holds one of `values` (nulls never match)."""
    def match(rows: pa.Table) -> np.ndarray:
        hit = pc.fill_null(pc.is_in(rows[column], value_set=values), False)
        return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)

    return match


def band_match(new_keys: np.ndarray) -> Callable[[pa.Table], np.ndarray]:
    """A match (see OldRows) of the rows sharing a bucket (the same key in the same band) with a row of
    `new_keys` ((n, bands) int64, see `band_hits`)."""
    def match(rows: pa.Table) -> np.ndarray:
        keys = rows["band_keys"].combine_chunks()
        if keys.null_count:
            raise ValueError(f"dedup_index has {keys.null_count} rows without band keys")
        flat = pc.list_flatten(keys).to_numpy(zero_copy_only=False).astype(np.int64)
        return band_hits(flat.reshape(len(keys), new_keys.shape[1]), new_keys)

    return match


def duplicates_incremental(new: DataFrame, old_hashes: DataFrame, index: DataFrame, *, cfg: DedupConfig,
                           checkpoint_dir: str | None = None, stats: dict[str, int] | None = None,
                           steps: Steps | None = None, size: tuple[int, int] | None = None,
                           reader: ColumnReader | None = None, old_rows: OldRows | None = None,
                           driver_rows: list[pa.Table] | None = None) -> DataFrame | None:
    """`dedup.spark.duplicates` of a new batch against earlier kept documents: exact dedup against
    `old_hashes` (clean_docs doc_id, exact_hash), near dedup against `index` (dedup_index rows); old
    documents always stay kept. DUPLICATE_DDL rows of the removed new documents.

    A batch that `dedup.spark.fits_one_task` (`size` as there) is decided on the driver by the local engine
    (`duplicates_against_index_local`) from a bounded candidate set: the batch (read by `reader`, a
    ColumnReader of `new`'s rows, without a job; else collected by one job), then the old hashes it shares
    and the index rows sharing a band key with it, found together by one job without a shuffle through
    `old_rows` (default: `old_rows_of(old_hashes, index)`). Larger batches take the distributed plan below
    (persisted `steps`: signatures, old-ids, edges, components). Both give the same rows. `stats` receives
    the component report and `dedup_one_task` (1 or 0). `driver_rows`, when given, receives the result as an
    Arrow table (DUPLICATE_SCHEMA) when the batch was decided on the driver, for a caller that can use it
    there without a job; None is then returned (no DataFrame is built of the rows)."""
    _keep_order(new, cfg.keep)
    one_task = fits_one_task(new, cfg, size)
    if stats is not None:
        stats["dedup_one_task"] = int(one_task)
    if one_task:
        out = _duplicates_on_driver(new, old_rows or old_rows_of(old_hashes, index), cfg, stats, reader)
        if driver_rows is not None:
            driver_rows.append(out)
            return None
        return new.sparkSession.createDataFrame(out, DUPLICATE_TYPE)
    exact = (exact_duplicates_incremental(new, old_hashes, keep=cfg.keep).localCheckpoint() if cfg.exact
             else None)
    near = None
    if cfg.near:
        rest = new if exact is None else new.join(exact.select("doc_id"), "doc_id", "left_anti")
        near = near_duplicates_incremental(rest, index, cfg=cfg, checkpoint_dir=checkpoint_dir, stats=stats,
                                           steps=steps).localCheckpoint()
    if exact is None and near is None:
        return new.sparkSession.createDataFrame([], DUPLICATE_DDL)
    return combine_duplicates(exact, near)


def _duplicates_on_driver(new: DataFrame, old_rows: OldRows, cfg: DedupConfig, stats: dict[str, int] | None,
                          reader: ColumnReader | None) -> pa.Table:
    """The one-task plan of `duplicates_incremental`: the batch on the driver (`reader`, else one job), then
    the old hashes it shares and the index rows that share a bucket with it (one job, no shuffle), then
    `duplicates_against_index_local` there: DUPLICATE_SCHEMA rows."""
    keep_cols = [c for c, _ in parse_keep_rule(cfg.keep) if c != "doc_id"]
    sig_cols = ["signature", "band_keys"] if "signature" in new.columns else ["text"]
    cols = list(dict.fromkeys(["doc_id", "exact_hash", *keep_cols, *sig_cols]))
    batch = reader(cols, None).read_all() if reader is not None else new.select(*cols).toArrow()
    parts = []
    hashes = pc.unique(batch["exact_hash"].combine_chunks().drop_null()).cast(pa.string())
    if cfg.exact and len(hashes):
        parts.append(old_rows("hashes", is_in_match("exact_hash", hashes)).select(
            "doc_id", "exact_hash", F.lit(None).cast("binary").alias("signature"),
            F.lit(None).cast("array<bigint>").alias("band_keys")))
    if cfg.near and batch.num_rows:
        signed = batch if "signature" in batch.column_names else batch.append_column(
            "band_keys", signature_columns(batch["text"], cfg)[1])
        keys = signed["band_keys"].combine_chunks().drop_null()
        if len(keys):
            new_keys = pc.list_flatten(keys).to_numpy(zero_copy_only=False).astype(np.int64).reshape(len(keys), -1)
            parts.append(old_rows("index", band_match(new_keys)).select(
                "doc_id", F.lit(None).cast("string").alias("exact_hash"), "signature", "band_keys"))
    found = _LOOKUP_ARROW.empty_table()
    if parts:  # both lookups in one job
        found = functools.reduce(DataFrame.unionByName, parts).toArrow()
    from_hashes = pc.is_valid(found["exact_hash"])
    old_hit = found.filter(from_hashes).select(["doc_id", "exact_hash"])
    candidates = found.filter(pc.invert(from_hashes)).select(SIGNATURE_ARROW.names).cast(SIGNATURE_ARROW)
    out = duplicates_against_index_local(batch, old_hit, candidates, cfg=cfg)
    if stats is not None:
        stats.update(component_stats(out))
    log.info("incremental dedup on the driver: %d new documents (%s), %d old hashes and %d index rows met, "
             "%d removed", batch.num_rows, "read" if reader is not None else "collected", old_hit.num_rows,
             candidates.num_rows, out.num_rows)
    return out.replace_schema_metadata(None).cast(DUPLICATE_SCHEMA)


_LOOKUP_ARROW = pa.schema([("doc_id", pa.string()), ("exact_hash", pa.string()), ("signature", pa.binary()),
                           ("band_keys", pa.list_(pa.int64()))])


def index_rows(kept: DataFrame, cfg: DedupConfig) -> DataFrame:
    """dedup_index rows (doc_id, signature, band_keys) of kept documents (doc_id, text, or their own
    signature/band_keys columns, see dedup.spark.signatures); documents without any shingle get no row."""
    return signatures(kept, cfg)
