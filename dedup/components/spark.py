"""Connected components of a Spark edge list (a, b): by union-find on the driver when the list is small, else
by alternating large-star / small-star rounds (Kiveris et al. 2014) that stop as soon as the edges form stars.
Both label every node with its component's smallest node, so either gives the same result.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dedup.components import connected_components as union_find_components
from dedup.config import DedupConfig
from dedup.errors import DedupError
from dedup.steps.spark import Steps, checkpoint

log = logging.getLogger(__name__)


def _large_star(edges: DataFrame) -> DataFrame:
    sym = edges.select("a", "b").unionByName(edges.select(F.col("b").alias("a"), F.col("a").alias("b")))
    mins = sym.groupBy("a").agg(F.least(F.min("b"), F.col("a")).alias("m"))
    return (
        sym.where(F.col("b") > F.col("a")).join(mins, "a")
        .select(F.col("b").alias("a"), F.col("m").alias("b")).distinct()
    )


def _small_star(edges: DataFrame) -> DataFrame:
    oriented = edges.select(F.greatest("a", "b").alias("a"), F.least("a", "b").alias("b"))
    mins = oriented.groupBy("a").agg(F.min("b").alias("m"))
    joined = oriented.join(mins, "a")
    return (
        joined.select(F.col("b").alias("a"), F.col("m").alias("b"))
        .unionByName(joined.select("a", F.col("m").alias("b")))
        .where(F.col("a") != F.col("b")).distinct()
    )


def _is_star_forest(edges: DataFrame) -> bool:
    """True when every node has one edge, to a node with no outgoing edge: each component is a star whose
    centre is its smallest node."""
    multi = edges.groupBy("a").count().where(F.col("count") > 1).limit(1).count()
    if multi:
        return False
    return edges.select(F.col("b").alias("a")).join(edges.select("a"), "a", "left_semi").limit(1).count() == 0


def connected_components(edges: DataFrame, *, max_iterations: int, checkpoint_every: int = 1,
                         checkpoint_dir: str | None = None, steps: Steps | None = None) -> DataFrame:
    """(doc_id, cluster_id) for every node of `edges` (a, b): cluster_id = the component's smallest node.

    Alternates large-star and small-star (Kiveris et al. 2014) until the graph is a forest of stars; the
    plan is truncated every `checkpoint_every` rounds (written under `checkpoint_dir`, else a local
    checkpoint, see `checkpoint`). With persisted `steps`, every round is written instead (`cc-NNN`) and a
    re-run starts from the last complete one. Raises DedupError when `max_iterations` rounds do not converge.
    """
    oriented = edges.select(F.greatest("a", "b").alias("a"), F.least("a", "b").alias("b")).distinct()
    persist = steps is not None and steps.folder is not None
    resumed = steps.last_round("cc") if steps is not None and persist else None
    first = 1
    if resumed is not None:
        first, current = resumed[0] + 1, resumed[1]
    elif persist and steps is not None:
        current = steps.materialize("cc-000", lambda: oriented)
    else:
        current = checkpoint(oriented, checkpoint_dir)
    for round_no in range(first, max_iterations + 1):
        if _is_star_forest(current):
            # zero rounds is the usual case, not a failure: every candidate pair already points at its
            # cluster's minimum, so the edges are a forest of stars before any round
            log.info("connected components: %s", "the candidate edges were already stars (no round needed)"
                     if round_no == 1 else f"stars after {round_no - 1} round(s)")
            break
        nxt = _small_star(_large_star(current))
        if persist and steps is not None:
            current = steps.materialize(f"cc-{round_no:03d}", lambda nxt=nxt: nxt)  # type: ignore[misc]
        elif round_no % checkpoint_every == 0:
            current = checkpoint(nxt, checkpoint_dir)
        else:
            current = nxt
    else:
        if not _is_star_forest(current):
            raise DedupError(f"connected components did not converge in max_iterations={max_iterations} rounds")
    roots = current.select(F.col("b").alias("doc_id")).distinct().select("doc_id", F.col("doc_id").alias("cluster_id"))
    return current.select(F.col("a").alias("doc_id"), F.col("b").alias("cluster_id")).unionByName(roots)


def components_on_driver(edges: DataFrame) -> DataFrame:
    """(doc_id, cluster_id) of the nodes of a small edge list (a, b), by union-find on the driver: the same
    result as `connected_components` (cluster_id = the component's smallest doc_id) without its jobs."""
    table = edges.select("a", "b").toArrow()
    ends = pa.chunked_array(table["a"].chunks + table["b"].chunks, pa.string())
    nodes = pc.unique(ends).sort()
    src = pc.index_in(table["a"], value_set=nodes).to_numpy(zero_copy_only=False).astype(np.int64)
    dst = pc.index_in(table["b"], value_set=nodes).to_numpy(zero_copy_only=False).astype(np.int64)
    labels = union_find_components(len(nodes), src, dst)
    members = pa.table({"doc_id": nodes, "cluster_id": nodes.take(pa.array(labels))})
    return edges.sparkSession.createDataFrame(members.to_pandas(), "doc_id string, cluster_id string")


def components(edges: DataFrame, *, cfg: DedupConfig, checkpoint_dir: str | None = None,
               steps: Steps | None = None) -> DataFrame:
    """(doc_id, cluster_id) of the materialized edge list `edges`: on the driver when it has at most
    cfg.driver_components_max_edges edges, else by distributed rounds. With persisted `steps` the result is
    the step `components` (and the rounds `cc-NNN`), read back on a re-run."""
    def rounds() -> DataFrame:
        return connected_components(edges, max_iterations=cfg.max_iterations, checkpoint_every=cfg.checkpoint_every,
                                    checkpoint_dir=checkpoint_dir, steps=steps)

    def small() -> bool:
        return edges.count() <= cfg.driver_components_max_edges

    if steps is not None and steps.folder is not None:
        return steps.materialize("components", lambda: components_on_driver(edges) if small() else rounds())
    return components_on_driver(edges) if small() else checkpoint(rounds(), checkpoint_dir)
