"""Spark side of the evidence rule (dedup.resolve): components are resolved inside tasks, whole.

The members of the candidate-edge components (doc_id, component id, signature, the keep-rule columns, the
edges leaving each member, and the text for verify='shingles') are shuffled by component id, so every
component lands whole in one partition; each partition is then resolved in one call of the same
`dedup.resolve.resolve_near` the local engine uses. Components are disjoint and the resolution treats them
independently, so resolving many at once in a partition equals resolving each alone: the result does not
depend on the partitioning and equals the local engine's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dedup.components.spark import components
from dedup.config import DedupConfig
from dedup.incremental import signature_matrix
from dedup.keep import keep_ranks, parse_keep_rule
from dedup.resolve import RESULT_SCHEMA, removed_rows, resolve_near
from dedup.steps.spark import Steps

log = logging.getLogger(__name__)

RESULT_DDL = "doc_id string, cluster_id string, kept_doc_id string, similarity double, verified_by string"
OLD = "_is_old"


def _resolve_partition(cfg: DedupConfig, floor: float, verify: str,
                       pinned: bool) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    rule = parse_keep_rule(cfg.keep)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        parts = [b for b in batches if b.num_rows]
        if not parts:
            return
        table = pa.Table.from_batches(parts)
        table = table.take(pc.sort_indices(table, sort_keys=[("doc_id", "ascending")]))
        ids = table["doc_id"].combine_chunks().cast(pa.string())
        nbrs = table["nbrs"].combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(nbrs), 0).to_numpy(zero_copy_only=False)
        src = np.repeat(np.arange(len(ids), dtype=np.int64), lengths)
        dst = pc.index_in(pc.list_flatten(nbrs), value_set=ids).to_numpy(zero_copy_only=False).astype(np.int64)
        sig = signature_matrix(table["signature"], cfg.num_perm)
        is_old = (table[OLD].to_numpy(zero_copy_only=False).astype(bool) if pinned
                  else np.zeros(len(ids), dtype=bool))
        new_pos = np.nonzero(~is_old)[0]
        ranks = np.arange(len(ids), dtype=np.int64) + len(ids)  # old rows by doc_id, after every new row
        ranks[new_pos] = keep_ranks(table.take(pa.array(new_pos)), rule)
        res = resolve_near(sig, src, dst, ranks, floor=floor, verify=verify,
                           texts=table["text"].combine_chunks() if verify == "shingles" else None,
                           ngram=cfg.ngram, mode=cfg.shingle, pinned=is_old if pinned else None)
        out = removed_rows(ids, res, verify if verify == "shingles" else "signature", rows=new_pos)
        yield from out.to_batches()

    return run


def resolve_components(members: DataFrame, edges: DataFrame, sigs: DataFrame, docs: DataFrame, *,
                       cfg: DedupConfig, old: DataFrame | None = None) -> DataFrame:
    """Removed documents (RESULT_DDL) of the components `members` (doc_id, cluster_id) of `edges` (a, b).

    `sigs`: (doc_id, signature) of every member; `docs`: doc_id, the keep-rule columns (and text when
    cfg.verify is 'shingles') of the new documents; `old`: doc_ids of pinned documents (incremental dedup:
    never removed, kept first), which need no keep-rule columns. Components whose size passes
    cfg.max_cluster are logged and resolved like the others.
    """
    verify = cfg.verify if old is None else "signature"
    floor = cfg.removal_floor() if old is None else cfg.threshold - cfg.tolerance
    keep_cols = [c for c, _ in parse_keep_rule(cfg.keep) if c != "doc_id"]
    cols = ["doc_id", *keep_cols, *(["text"] if verify == "shingles" else [])]
    out_edges = edges.groupBy("a").agg(F.collect_list("b").alias("nbrs")).withColumnRenamed("a", "doc_id")
    rows = (members.join(sigs.select("doc_id", "signature"), "doc_id")
            .join(out_edges, "doc_id", "left").join(docs.select(*cols), "doc_id", "left"))
    if old is not None:
        rows = rows.join(old.select("doc_id", F.lit(True).alias(OLD)), "doc_id", "left").withColumn(
            OLD, F.coalesce(F.col(OLD), F.lit(False)))
    parts = max(members.sparkSession.sparkContext.defaultParallelism, 1)
    rows = rows.repartition(parts, "cluster_id")
    return rows.mapInArrow(_resolve_partition(cfg, floor, verify, old is not None), RESULT_DDL)


def resolve_candidate_graph(edges: DataFrame, sigs: DataFrame, docs: DataFrame, *, cfg: DedupConfig,
                            checkpoint_dir: str | None = None, stats: dict[str, int] | None = None,
                            steps: Steps | None = None, old: DataFrame | None = None) -> DataFrame:
    """Removed documents (RESULT_DDL) of the materialized verified candidate edges `edges` (a, b): their
    components (dedup.components.spark: on the driver when small, persisted with `steps`), the component
    report into `stats`, then `resolve_components` (arguments as there). The tail of full and incremental
    near dedup alike."""
    members = components(edges, cfg=cfg, checkpoint_dir=checkpoint_dir, steps=steps)
    report = component_report(members, cfg.max_cluster)
    if stats is not None:
        stats.update(report)
    return resolve_components(members, edges, sigs, docs, cfg=cfg, old=old)


def component_report(members: DataFrame, max_cluster: int) -> dict[str, int]:
    """Largest component and the count of components above `max_cluster` (one small job), logged."""
    row = (members.groupBy("cluster_id").count()
           .agg(F.max("count").alias("largest"),
                F.sum(F.when(F.col("count") > max_cluster, 1).otherwise(0)).alias("over")).collect()[0])
    stats = {"near_largest_component": int(row["largest"] or 0), "near_components_over_max_cluster": int(row["over"] or 0)}
    if stats["near_components_over_max_cluster"]:
        log.warning("near dedup: %d components larger than max_cluster=%d (largest %d), resolved member by member",
                    stats["near_components_over_max_cluster"], max_cluster, stats["near_largest_component"])
    return stats


__all__ = ["RESULT_DDL", "RESULT_SCHEMA", "component_report", "resolve_candidate_graph", "resolve_components"]
