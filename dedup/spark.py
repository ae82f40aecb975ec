"""Spark adapter of the dedup engine: exact and MinHash-LSH near duplicates of a DataFrame.

`duplicates` is what the curate stage calls: exact then near duplicates, each row naming a kept document.
It picks one of three plans by what the local engine would hold for the input (`driver_plan_bytes`):

- up to `cfg.driver_max_bytes` (default 64 MiB, a fixed bound, at most spark.driver.maxResultSize): the
  **driver plan**, the local engine's own code (`dedup.local.duplicates_local`) on the driver, its columns
  read there (no job) or collected: no extra job for a small input such as the sample;
- up to `cfg.single_task_max_bytes` (the executor task's budget): the **one-task plan**
  (dedup/onetask/spark.py), the same code inside ONE Spark task on an executor, which reads its input
  itself (or gets it by one shuffle) and whose rows are a persisted step: one job, no component rounds,
  and the driver's memory does not grow with the corpus;
- beyond: the **distributed plan** below.

All three give the same rows, for any partitioning.

The distributed functions return DataFrame(doc_id, cluster_id, kept_doc_id, similarity, verified_by) with
one row per *removed* document; cluster_id is the final cluster's smallest doc_id and kept_doc_id its
keep-rule winner (dedup.keep); similarity is the removed document's similarity to it (1.0 for exact
duplicates). Plan: signatures and band keys through mapInArrow (numba kernels; or the input's own
`signature`/`band_keys` columns, which the curate stage computes in its filter pass) -> per (band, key)
bucket the smallest doc_id (a combiner-side aggregate, so hot buckets never gather in one task) -> star
edges member -> bucket minimum (m - 1 edges for m members, never all pairs) -> verification of each edge by
signature Jaccard -> connected components (dedup/components/spark.py: union-find on the driver for a small
edge list, else large-star / small-star rounds) -> each component resolved whole inside one task by the
evidence rule of dedup.resolve (dedup/resolve/spark.py; exact duplicates: keep rule as a min over a
struct). Every step is a function of the data alone, so the result is the same for any partitioning,
executor count or run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import NumericType

from dedup.config import DedupConfig
from dedup.incremental import signature_matrix
from dedup.keep import parse_keep_rule
from dedup.local import (
    DUPLICATE_SCHEMA,
    TextFetch,
    component_stats,
    duplicates_local,
    signature_rows,
)
from dedup.lsh import resolve_bands
from dedup.minhash import signature_jaccard
from dedup.onetask.spark import STEP as ONE_TASK_STEP
from dedup.onetask.spark import OverBudget, duplicates_in_one_task, read_texts
from dedup.resolve.spark import RESULT_DDL, resolve_candidate_graph
from dedup.steps.spark import ColumnReader, Steps, checkpoint
from dedup.threads import thread_budget

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["doc_id", "cluster_id", "kept_doc_id", "similarity", "verified_by"]
DUPLICATE_DDL = f"{RESULT_DDL}, dup_reason string"
DUPLICATE_TYPE = from_arrow_schema(DUPLICATE_SCHEMA)  # the same as Spark types (no DDL parse in the JVM)
SIGNATURE_SCHEMA = "doc_id string, signature binary, band_keys array<bigint>"
# per document the driver plan collects besides its signature and band keys: doc_id, exact hash, keep-rule
# values, Arrow offsets and validity (an allowance; see `driver_plan_bytes`)
_ROW_BYTES = 128


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


def _signature_partitions(cfg: DedupConfig) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with thread_budget():  # the task's share of the executor (dedup.threads)
            for batch in batches:
                if batch.num_rows:
                    yield from signature_rows(batch, cfg).to_batches()

    return run


def signatures(df: DataFrame, cfg: DedupConfig) -> DataFrame:
    """DataFrame(doc_id, signature binary (num_perm little-endian uint32), band_keys array<bigint>) for the
    documents of `df` that have at least one shingle: the input's own `signature`/`band_keys` columns when it
    has them (null for a document without shingles, see dedup.local.signature_columns), else computed from
    its text."""
    if "signature" in df.columns and "band_keys" in df.columns:
        return df.where(F.col("signature").isNotNull()).select("doc_id", "signature", "band_keys")
    return df.select("doc_id", "text").mapInArrow(_signature_partitions(cfg), SIGNATURE_SCHEMA)


def _verify_partitions(num_perm: int, floor: float) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            sim = signature_jaccard(signature_matrix(batch.column("sig_a"), num_perm),
                                    signature_matrix(batch.column("sig_b"), num_perm))
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


def near_duplicates(df: DataFrame, *, cfg: DedupConfig, checkpoint_dir: str | None = None,
                    stats: dict[str, int] | None = None, steps: Steps | None = None) -> DataFrame:
    """MinHash-LSH near duplicates of `df` (doc_id unique, text normalized, keep-rule columns of cfg.keep;
    optionally `signature`/`band_keys`, see `signatures`), by the distributed plan.

    Returns RESULT_COLUMNS rows of the removed documents: a member of a component of verified edges is
    removed only with its own similarity to the kept document >= cfg.removal_floor() (dedup.resolve). The
    signatures, the verified edge list and the components are materialized (checkpointed) here. `stats`,
    when given, receives the largest component's size and the count of components above cfg.max_cluster.
    With persisted `steps` (dedup.steps.spark), signatures (unless the input has them), edges, component
    rounds and components are written there and a re-run reuses the complete ones.
    """
    _keep_order(df, cfg.keep)
    persisted = steps is not None and steps.folder is not None
    if "signature" in df.columns:
        sigs = signatures(df, cfg)  # already materialized with the input
    elif persisted and steps is not None:
        sigs = steps.materialize("signatures", lambda: signatures(df, cfg))
    else:
        sigs = checkpoint(signatures(df, cfg), checkpoint_dir)
    edges = (steps.materialize("edges", lambda: candidate_edges(sigs, cfg)) if persisted and steps is not None
             else checkpoint(candidate_edges(sigs, cfg), checkpoint_dir))
    return resolve_candidate_graph(edges, sigs, df, cfg=cfg, checkpoint_dir=checkpoint_dir, stats=stats,
                                   steps=steps)


def driver_budget(spark: SparkSession, cfg: DedupConfig) -> int:
    """Bytes the driver plan may collect: cfg.driver_max_bytes, at most cfg.single_task_max_bytes and Spark's
    `spark.driver.maxResultSize` (default 1g: an action collecting more fails; 0: unlimited)."""
    limit = _jvm_bytes(spark.conf.get("spark.driver.maxResultSize", "1g") or "1g")
    budget = min(cfg.driver_max_bytes, cfg.single_task_max_bytes)
    return min(budget, limit) if limit else budget


def batch_budget(spark: SparkSession, cfg: DedupConfig) -> int:
    """Bytes incremental curate's small-batch plan may collect to the driver (`fits_one_task`; bounded by the
    batch, not the corpus): cfg.single_task_max_bytes, at most Spark's `spark.driver.maxResultSize`."""
    limit = _jvm_bytes(spark.conf.get("spark.driver.maxResultSize", "1g") or "1g")
    return min(cfg.single_task_max_bytes, limit) if limit else cfg.single_task_max_bytes


def _jvm_bytes(size: str) -> int:
    """A JVM size string ('1g', '512m', '2048k', '0') in bytes; 0 means unlimited."""
    text = size.strip().lower().rstrip("b")
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(text[-1:], 1)
    return int(float(text.rstrip("kmgt") or 0) * scale)


def driver_plan_bytes(cfg: DedupConfig, documents: int, text_bytes: int, *, texts: bool) -> int:
    """What the driver plan collects for `documents` documents: signature (4 x num_perm bytes), band keys (8 per
    band) and a _ROW_BYTES allowance each, plus `text_bytes` when `texts`. Python's working copies while
    deduplicating (the signature matrix sorted by doc_id, the candidate edges, the shingles of candidates)
    add about as much again; the local engine holds the same."""
    bands, _ = resolve_bands(cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.false_positive_weight,
                             cfg.false_negative_weight)
    return documents * (_ROW_BYTES + 4 * cfg.num_perm + 8 * bands) + (text_bytes if texts else 0)


def _input_size(df: DataFrame, size: tuple[int, int] | None) -> tuple[int, int]:
    """(documents, text bytes) of `df`: `size` when the caller counted them, else one small job counts."""
    if size is not None:
        return size
    text_bytes = F.sum(F.octet_length("text")) if "text" in df.columns else F.lit(0)
    row = df.agg(F.count(F.lit(1)).alias("n"), text_bytes.alias("text_bytes")).collect()[0]
    return int(row["n"]), int(row["text_bytes"] or 0)


def choose_plan(df: DataFrame, cfg: DedupConfig, size: tuple[int, int] | None, *, readable: bool = False) -> tuple[str, int]:
    """(plan, driver budget) of `duplicates` on `df`. Plans: 'driver-texts' (the driver plan collecting the
    texts it needs with the rest: verify='shingles' or no precomputed signatures), 'driver' (the driver plan
    without texts: verify='shingles' then fetches the candidates' texts once known, when all texts would
    not fit), 'one-task' (within cfg.single_task_max_bytes: counting the texts it needs, except with
    precomputed signatures and `readable`, the task reading the candidates' texts itself), 'distributed'."""
    budget = driver_budget(df.sparkSession, cfg)
    if cfg.single_task_max_bytes == 0:
        return "distributed", budget
    size = _input_size(df, size)
    signed = "signature" in df.columns
    texts_needed = cfg.near and (not signed or cfg.verify == "shingles")
    full = driver_plan_bytes(cfg, *size, texts=texts_needed)
    lean = driver_plan_bytes(cfg, *size, texts=False)
    if full <= budget:
        plan = "driver-texts" if texts_needed else "driver"
    elif signed and lean <= budget:
        plan = "driver"  # the candidates' texts are counted once they are known (read_texts)
    elif (lean if signed and readable else full) <= cfg.single_task_max_bytes:
        plan = "one-task"
    else:
        plan = "distributed"
    log.info("dedup input: %d documents, %.1f MB of text; the local engine holds %.1f MB with texts, %.1f MB "
             "without (driver plan up to %d, one task up to %d): %s plan", size[0], size[1] / 1e6, full / 1e6,
             lean / 1e6, budget, cfg.single_task_max_bytes, plan)
    return plan, budget


def fits_one_task(df: DataFrame, cfg: DedupConfig, size: tuple[int, int] | None = None) -> bool:
    """Whether incremental curate decides the batch `df` on the driver: what the driver collects (see
    `driver_plan_bytes`, texts counted as `choose_plan` does) is at most `batch_budget`. `size` = (documents, text
    bytes) of `df` when the caller counted them (curate: the `curated` step's file notes), else one small job counts."""
    if cfg.single_task_max_bytes == 0:
        return False
    size = _input_size(df, size)
    lean = driver_plan_bytes(cfg, *size, texts=False)
    full = driver_plan_bytes(cfg, *size, texts=cfg.near and ("signature" not in df.columns or cfg.verify == "shingles"))
    return ("signature" in df.columns and lean <= batch_budget(df.sparkSession, cfg)) or \
        full <= batch_budget(df.sparkSession, cfg)


def _fetch_texts(df: DataFrame, lengths: pa.Table, room: int) -> TextFetch:
    """A TextFetch reading the texts of the given doc_ids from `df` (a broadcast semi-join: one job, no
    shuffle), after checking their bytes (`lengths`: doc_id, text_bytes) against `room`."""
    known = lengths["doc_id"].combine_chunks()

    def fetch(ids: pa.Array) -> pa.Array:
        at = pc.index_in(ids, value_set=known)
        need = int(pc.sum(lengths["text_bytes"].take(at)).as_py() or 0)
        if need > room:
            raise OverBudget(f"{len(ids)} candidates' texts take {need} bytes, {room} are left")
        wanted = df.sparkSession.createDataFrame(pa.table({"doc_id": ids}))
        got = df.select("doc_id", "text").join(F.broadcast(wanted), "doc_id", "left_semi").toArrow()
        return got["text"].combine_chunks().take(pc.index_in(ids, value_set=got["doc_id"].combine_chunks()))

    return fetch


def _local_columns(df: DataFrame, cfg: DedupConfig, *, texts: bool) -> list[str]:
    """The columns of `df` the local engine reads: doc_id, exact_hash, the keep-rule columns, the signatures
    when `df` has them (not the band keys: the engine derives them from the signatures), and text when
    `texts` or when near dedup has no signatures."""
    keep_cols = [c for c, _ in parse_keep_rule(cfg.keep) if c != "doc_id"]
    signed = "signature" in df.columns
    extra = (["text"] if texts or (cfg.near and not signed) else []) + (["signature"] if signed else [])
    return list(dict.fromkeys(["doc_id", "exact_hash", *keep_cols, *extra]))


def _duplicates_on_driver(df: DataFrame, cfg: DedupConfig, stats: dict[str, int] | None, *, texts: bool,
                          budget: int, reader: ColumnReader | None = None) -> pa.Table | None:
    """The driver plan: the columns dedup needs collected as Arrow (one job, converted in the tasks; or read
    on the driver by `reader`, no job), then `duplicates_local` on the driver; with `texts` false only the
    candidates' texts are read (a second job, or `reader` again), when they fit the rest of `budget` (else
    None: the caller takes the distributed plan). Returns the DUPLICATE_SCHEMA rows."""
    cols = _local_columns(df, cfg, texts=texts)
    fetch = None
    fetch_texts = cfg.near and cfg.verify == "shingles" and "text" not in cols
    if reader is not None:
        table = reader(cols, None).read_all()
        fetch = read_texts(reader, budget - table.nbytes) if fetch_texts else None
    elif fetch_texts:
        table = df.select(*cols, F.octet_length("text").alias("text_bytes")).toArrow()
        fetch = _fetch_texts(df, table.select(["doc_id", "text_bytes"]), budget - table.nbytes)
    else:
        table = df.select(*cols).toArrow()
    try:
        out = duplicates_local(table, cfg=cfg, texts=fetch)
    except OverBudget as exc:
        log.info("dedup: the driver plan leaves for the distributed plan: %s", exc)
        return None
    if stats is not None:
        stats.update(component_stats(out))
    log.info("dedup on the driver: %d documents (%.1f MB %s), %d removed", table.num_rows, table.nbytes / 1e6,
             "read" if reader is not None else "collected", out.num_rows)
    return out.replace_schema_metadata(None).cast(DUPLICATE_SCHEMA)


def combine_duplicates(exact: DataFrame | None, near: DataFrame | None) -> DataFrame:
    """DUPLICATE_DDL rows of exact and near removals, the exact ones re-pointed: an exact duplicate of a
    document near dedup removed takes that document's cluster, kept document, similarity and evidence (its
    text equals the removed one's), so every kept_doc_id names a kept document."""
    parts = []
    if near is not None:
        near = near.withColumn("dup_reason", F.lit("near"))
        parts.append(near)
    if exact is not None:
        exact = exact.withColumn("dup_reason", F.lit("exact"))
        if near is not None:
            moved = near.select(F.col("doc_id").alias("kept_doc_id"), F.col("cluster_id").alias("n_cluster"),
                                F.col("kept_doc_id").alias("n_kept"), F.col("similarity").alias("n_sim"),
                                F.col("verified_by").alias("n_by"))
            exact = exact.join(moved, "kept_doc_id", "left").select(
                "doc_id", F.coalesce("n_cluster", "cluster_id").alias("cluster_id"),
                F.coalesce("n_kept", "kept_doc_id").alias("kept_doc_id"),
                F.coalesce("n_sim", "similarity").alias("similarity"),
                F.coalesce("n_by", "verified_by").alias("verified_by"), "dup_reason")
        parts.append(exact)
    if not parts:
        raise ValueError("combine_duplicates needs exact or near removals")
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def duplicates(df: DataFrame, *, cfg: DedupConfig, checkpoint_dir: str | None = None,
               stats: dict[str, int] | None = None, steps: Steps | None = None,
               size: tuple[int, int] | None = None, reader: ColumnReader | None = None,
               driver_rows: list[pa.Table] | None = None) -> DataFrame | None:
    """Exact (cfg.exact) then near (cfg.near) duplicates of `df`, as the curate stage removes them:
    DUPLICATE_DDL rows (RESULT_COLUMNS and `dup_reason`, 'exact' or 'near') of the removed documents.

    Input: doc_id (unique), exact_hash, the keep-rule columns, text, and optionally signature/band_keys
    (see `signatures`). Near dedup sees the documents exact dedup kept; exact removals are re-pointed as
    `combine_duplicates` says. The plan (module docstring, `choose_plan`): the driver plan for a small input, its
    columns collected by a Spark job or, with `reader` (a ColumnReader of the same rows, e.g. `Steps.reader`
    of the persisted step `df` reads), read on the driver without one; the one-task plan up to
    cfg.single_task_max_bytes, `reader` shipped to the task (its rows the persisted step 'duplicates' of
    `steps`, reused by a re-run); otherwise exact dedup by a group-by and near dedup by `near_duplicates`
    (with persisted `steps`). All give the same rows. `stats` receives near dedup's component report,
    `dedup_one_task` (1 when the local engine's code ran: the driver or the one-task plan, 0 for the
    distributed one) and `dedup_on_driver` (1 for the driver plan); `size` = (documents, text bytes) of `df`
    when the caller counted them (curate: the `curated` step's file notes), else one small job counts.
    `driver_rows`, when given, receives the rows as an Arrow table (DUPLICATE_SCHEMA) when the driver plan
    ran, for a caller that can use them there without a job; no DataFrame is then built of them (that would
    send the rows to the JVM) and None is returned.
    """
    if steps is not None and steps.done(ONE_TASK_STEP):
        plan, budget = "one-task", 0  # a re-run after the one task's rows were persisted: no sizing job
    else:
        plan, budget = choose_plan(df, cfg, size, readable=reader is not None)
    result = on_driver = None
    if plan in ("driver-texts", "driver"):  # a bad keep rule fails there as in the local engine
        on_driver = _duplicates_on_driver(df, cfg, stats, texts=plan == "driver-texts", budget=budget, reader=reader)
    elif plan == "one-task":
        _keep_order(df, cfg.keep)  # a bad keep rule fails here, not in the task
        texts = reader is None and cfg.near and cfg.verify == "shingles"  # else the task reads the candidates'
        result, report = duplicates_in_one_task(df, cfg, _local_columns(df, cfg, texts=texts),
                                                steps=steps, reader=reader)
        if stats is not None:
            stats.update(report)
    if stats is not None:  # which plan ran, in the curate metrics
        stats["dedup_one_task"] = int(result is not None or on_driver is not None)
        stats["dedup_on_driver"] = int(on_driver is not None)
    if on_driver is not None:
        if driver_rows is not None:
            driver_rows.append(on_driver)
            return None
        return df.sparkSession.createDataFrame(on_driver, DUPLICATE_TYPE)
    if result is not None:
        return result
    _keep_order(df, cfg.keep)
    exact = exact_duplicates(df, keep=cfg.keep).localCheckpoint() if cfg.exact else None
    near = None
    if cfg.near:
        rest = df if exact is None else df.join(exact.select("doc_id"), "doc_id", "left_anti")
        near = near_duplicates(rest, cfg=cfg, checkpoint_dir=checkpoint_dir, stats=stats, steps=steps).localCheckpoint()
    if exact is None and near is None:
        return df.sparkSession.createDataFrame([], DUPLICATE_DDL)
    return combine_duplicates(exact, near)
