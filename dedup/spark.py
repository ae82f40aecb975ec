"""Spark adapter of the dedup engine: exact and MinHash-LSH near duplicates of a DataFrame.

Both functions return DataFrame(doc_id, cluster_id, kept_doc_id, similarity, verified_by) with one row per
*removed* document; cluster_id is the final cluster's smallest doc_id and kept_doc_id its keep-rule winner
(dedup.keep); similarity is the removed document's similarity to it (1.0 for exact duplicates). Plan:
signatures and band keys through mapInArrow (numba kernels) -> per (band, key) bucket the smallest doc_id
(a combiner-side aggregate, so hot buckets never gather in one task) -> star edges member -> bucket
minimum (m - 1 edges for m members, never all pairs) -> verification of each edge by signature Jaccard
-> connected components by alternating large-star / small-star rounds, bounded by cfg.max_iterations and
checkpointed every cfg.checkpoint_every rounds -> each component resolved whole inside one task by the evidence
rule of dedup.resolve (dedup/spark_resolve.py; exact duplicates: keep rule as a min over a struct). Every step
is a function of the data alone, so the result is the same for any partitioning, executor count or run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from dedup.components import connected_components as union_find_components
from dedup.config import DedupConfig
from dedup.errors import DedupError
from dedup.keep import parse_keep_rule
from dedup.lsh import band_keys, resolve_bands
from dedup.minhash import is_empty, minhash_signatures, signature_jaccard
from dedup.spark_resolve import component_report, resolve_components
from dedup.spark_steps import Steps

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["doc_id", "cluster_id", "kept_doc_id", "similarity", "verified_by"]
SIGNATURE_SCHEMA = "doc_id string, signature binary, band_keys array<bigint>"
SIGNATURE_ARROW = pa.schema(
    [("doc_id", pa.string()), ("signature", pa.binary()), ("band_keys", pa.list_(pa.int64()))]
)


def _keep_order(df: DataFrame, keep: list[str]) -> Column:
    """A struct whose minimum over a cluster is its kept member (nulls last, '-' descending, doc_id last)."""
    fields: list[Column] = []
    types = {f.name: f.dataType for f in df.schema.fields}
    for i, (name, desc) in enumerate(parse_keep_rule(keep)):
        if name not in types:
            raise ValueError(f"keep rule column {name!r} is not in the input (columns: {sorted(types)})")
        if desc and not isinstance(types[name], NumericType):
            raise ValueError(f"keep rule '-{name}': descending order needs a numeric column, got {types[name]}")
        value = -F.col(name) if desc else F.col(name)
        fields += [F.col(name).isNull().alias(f"n{i}"), value.alias(f"v{i}")]
    return F.struct(*fields, F.col("doc_id").alias("id"))


def _resolve_clusters(members: DataFrame, df: DataFrame, keep: list[str]) -> DataFrame:
    """members(doc_id, cluster_id) -> removed rows (doc_id, cluster_id, kept_doc_id)."""
    ranked = members.join(df, "doc_id").select("doc_id", "cluster_id", _keep_order(df, keep).alias("k"))
    kept = ranked.groupBy("cluster_id").agg(F.min("k").getField("id").alias("kept_doc_id"))
    return (ranked.join(kept, "cluster_id").where(F.col("doc_id") != F.col("kept_doc_id"))
            .select("doc_id", "cluster_id", "kept_doc_id", F.lit(1.0).alias("similarity"),
                    F.lit("exact_hash").alias("verified_by")))


def exact_duplicates(df: DataFrame, *, keep: list[str]) -> DataFrame:
    """Documents sharing `exact_hash` (the 128-bit hex key of dedup.exact) with another, less the kept one.

    Input columns: doc_id (unique), exact_hash, the keep-rule columns. Rows with a null exact_hash take no
    part. Output: (doc_id, cluster_id, kept_doc_id) of the removed documents.
    """
    _keep_order(df, keep)  # validate the rule against the schema before any work
    hashed = df.where(F.col("exact_hash").isNotNull())
    groups = (
        hashed.groupBy("exact_hash")
        .agg(F.count(F.lit(1)).alias("n"), F.min("doc_id").alias("cluster_id"))
        .where(F.col("n") > 1)
        .select("exact_hash", "cluster_id")
    )
    members = hashed.select("doc_id", "exact_hash").join(groups, "exact_hash").select("doc_id", "cluster_id")
    return _resolve_clusters(members, df, keep)


def _signature_partitions(cfg: DedupConfig, bands: int, rows: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    num_perm, ngram, mode, seed = cfg.num_perm, cfg.ngram, cfg.shingle, cfg.seed

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            sig = minhash_signatures(batch.column("text"), num_perm=num_perm, ngram=ngram, mode=mode, seed=seed)
            keep = ~is_empty(sig)  # documents without shingles cannot be near duplicates
            sig = np.ascontiguousarray(sig[keep])
            keys = band_keys(sig, bands, rows).reshape(-1)
            n = len(sig)
            width = sig.shape[1] * 4
            sig_arr = pa.Array.from_buffers(
                pa.binary(), n, [None, pa.py_buffer(np.arange(n + 1, dtype=np.int32) * width), pa.py_buffer(sig)]
            )
            key_arr = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * bands), pa.array(keys))
            ids = batch.column("doc_id").filter(pa.array(keep))
            yield pa.RecordBatch.from_arrays([ids.cast(pa.string()), sig_arr, key_arr], schema=SIGNATURE_ARROW)

    return run


def signatures(df: DataFrame, cfg: DedupConfig) -> DataFrame:
    """DataFrame(doc_id, signature binary (num_perm little-endian uint32), band_keys array<bigint>) for the
    documents of `df` that have at least one shingle."""
    bands, rows = resolve_bands(
        cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.false_positive_weight, cfg.false_negative_weight
    )
    return df.select("doc_id", "text").mapInArrow(_signature_partitions(cfg, bands, rows), SIGNATURE_SCHEMA)


def fixed_width_rows(column: pa.Array, num_perm: int) -> np.ndarray:
    """An (n, num_perm) uint32 view of a binary/large_binary column of signatures (no copy).

    Raises ValueError when a value is not exactly 4 * num_perm bytes long.
    """
    n = len(column)
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64 if pa.types.is_large_binary(column.type) else np.int32,
                            count=column.offset + n + 1)[column.offset :]
    if np.any(np.diff(offsets) != 4 * num_perm):
        raise ValueError(f"signatures must be {4 * num_perm} bytes each (num_perm={num_perm})")
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.view(np.uint32).reshape(n, num_perm)


def _verify_partitions(num_perm: int, floor: float) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            sim = signature_jaccard(fixed_width_rows(batch.column("sig_a"), num_perm),
                                    fixed_width_rows(batch.column("sig_b"), num_perm))
            keep = pa.array(sim >= floor)
            yield pa.RecordBatch.from_arrays([batch.column("a").filter(keep), batch.column("b").filter(keep)],
                                             names=["a", "b"])

    return run


def candidate_edges(sigs: DataFrame, cfg: DedupConfig) -> DataFrame:
    """Star edges (a, b), a > b: each member of an LSH bucket to the bucket's smallest doc_id, verified by
    signature Jaccard >= cfg.resolved_verify_threshold() unless cfg.verify is 'none'."""
    keyed = sigs.select("doc_id", F.posexplode("band_keys").alias("band", "key"))
    roots = (
        keyed.groupBy("band", "key")
        .agg(F.min("doc_id").alias("root"), F.count(F.lit(1)).alias("n"))
        .where(F.col("n") > 1)
        .select("band", "key", "root")
    )
    edges = (
        keyed.join(roots, ["band", "key"]).where(F.col("doc_id") != F.col("root"))
        .select(F.col("doc_id").alias("a"), F.col("root").alias("b")).distinct()
    )
    if not cfg.verify_edges:
        return edges
    sig = sigs.select("doc_id", "signature")
    paired = (
        edges.join(sig.withColumnRenamed("doc_id", "a").withColumnRenamed("signature", "sig_a"), "a")
        .join(sig.withColumnRenamed("doc_id", "b").withColumnRenamed("signature", "sig_b"), "b")
        .select("a", "b", "sig_a", "sig_b")
    )
    return paired.mapInArrow(_verify_partitions(cfg.num_perm, cfg.resolved_verify_threshold()), "a string, b string")


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


def near_duplicates(df: DataFrame, *, cfg: DedupConfig, checkpoint_dir: str | None = None,
                    stats: dict[str, int] | None = None, steps: Steps | None = None) -> DataFrame:
    """MinHash-LSH near duplicates of `df` (doc_id unique, text normalized, keep-rule columns of cfg.keep).

    Returns RESULT_COLUMNS rows of the removed documents: a member of a component of verified edges is
    removed only with its own similarity to the kept document >= cfg.removal_floor() (dedup.resolve). The
    verified edge list and the components are materialized (checkpointed) here. `stats`, when given,
    receives the largest component's size and the count of components above cfg.max_cluster. With
    persisted `steps` (dedup.spark_steps), signatures, edges, component rounds and components are written
    there and a re-run reuses the complete ones.
    """
    _keep_order(df, cfg.keep)
    if steps is not None and steps.folder is not None:
        sigs = steps.materialize("signatures", lambda: signatures(df, cfg))
        edges = steps.materialize("edges", lambda: candidate_edges(sigs, cfg))
        small = not steps.done("components") and edges.count() <= cfg.driver_components_max_edges
        members = steps.materialize("components", lambda: components_on_driver(edges) if small else
                                    connected_components(edges, max_iterations=cfg.max_iterations,
                                                         checkpoint_every=cfg.checkpoint_every, steps=steps))
    else:
        sigs = signatures(df, cfg)
        sigs = checkpoint(sigs, checkpoint_dir)
        edges = candidate_edges(sigs, cfg)
        edges = checkpoint(edges, checkpoint_dir)
        if edges.count() <= cfg.driver_components_max_edges:
            members = components_on_driver(edges)
        else:
            members = connected_components(edges, max_iterations=cfg.max_iterations,
                                           checkpoint_every=cfg.checkpoint_every, checkpoint_dir=checkpoint_dir)
            members = checkpoint(members, checkpoint_dir)
    report = component_report(members, cfg.max_cluster)
    if stats is not None:
        stats.update(report)
    return resolve_components(members, edges, sigs, df, cfg=cfg)


def checkpoint(df: DataFrame, checkpoint_dir: str | None) -> DataFrame:
    """`df` with its plan cut: written as Parquet under `checkpoint_dir` (a scratch URI, local or s3://, by
    the tasks through pyarrow, so no Hadoop filesystem or shared disk is needed) and read back; without a
    directory, a local checkpoint on the executors. The caller removes the directory."""
    if not checkpoint_dir:
        return df.localCheckpoint()
    from pipelines.lake.files.spark import materialize  # the pyarrow table I/O lives with the other Spark I/O

    return materialize(df, checkpoint_dir)
