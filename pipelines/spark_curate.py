"""The curate stage on Spark: normalize and filter raw_docs (whole Arrow batches in mapInArrow), exact then
near dedup among the documents that pass, and one doc_decisions row per raw document.

Both output tables are replaced as a whole, so a re-run gives the same tables (the keep rule is deterministic).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from dedup.exact import text_hash128_hex
from dedup.spark import exact_duplicates, near_duplicates
from pipelines import lake
from pipelines.config import Config, CurateConfig
from pipelines.filters import curate_batch
from pipelines.report import StageReport
from pipelines.spark_session import read_table_df, write_df_files
from schemas import TABLES
from schemas.raw_docs import SOURCE_FIELDS
from schemas.signals import SIGNAL_FIELDS

log = logging.getLogger(__name__)

SOURCE_COLUMNS = [f.name for f in SOURCE_FIELDS]
SIGNAL_COLUMNS = [f.name for f in SIGNAL_FIELDS]


def curated_schema() -> pa.Schema:
    """Rows leaving the filter step: the raw row's identity and source, the final text, reason, hash, signals."""
    clean = TABLES["clean_docs"].arrow_schema
    return pa.schema([clean.field("doc_id"), clean.field("text"), *(clean.field(c) for c in SOURCE_COLUMNS),
                      pa.field("reason", pa.string()), clean.field("exact_hash"),
                      *(clean.field(c) for c in SIGNAL_COLUMNS)])


def _filter_partitions(cfg: CurateConfig):
    schema = curated_schema()

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            out = curate_batch(batch, normalize=cfg.normalize, filters=list(cfg.filters))
            columns = {name: out.column(name) for name in out.schema.names}
            columns["exact_hash"] = text_hash128_hex(columns["text"])
            for name in SOURCE_COLUMNS:
                columns[name] = batch.column(name)
            arrays = [columns[f.name] if f.name in columns else pa.nulls(batch.num_rows, f.type) for f in schema]
            yield pa.RecordBatch.from_arrays([a.cast(f.type) for a, f in zip(arrays, schema)], schema=schema)

    return run


def _duplicates(passed: DataFrame, cfg: CurateConfig, checkpoint_dir: str) -> DataFrame:
    """(doc_id, cluster_id, kept_doc_id, dup_reason) for every document removed as an exact or near duplicate."""
    keep_cols = [k.lstrip("-+") for k in cfg.dedup.keep]
    cols = list(dict.fromkeys(["doc_id", "text", "exact_hash", *keep_cols]))
    candidates = passed.select(*cols)
    empty = candidates.sparkSession.createDataFrame(
        [], "doc_id string, cluster_id string, kept_doc_id string, dup_reason string")
    result = empty
    if cfg.dedup.exact:
        exact = exact_duplicates(candidates, keep=cfg.dedup.keep).withColumn("dup_reason", F.lit("exact"))
        result = result.unionByName(exact)
        candidates = candidates.join(exact.select("doc_id"), "doc_id", "left_anti")
    if cfg.dedup.near:
        near = near_duplicates(candidates, cfg=cfg.dedup, checkpoint_dir=checkpoint_dir)
        result = result.unionByName(near.withColumn("dup_reason", F.lit("near")))
    return result


def run_curate(spark: SparkSession, cfg: Config) -> StageReport:
    """raw_docs -> clean_docs (kept, normalized, with signals) and doc_decisions (every raw doc's fate)."""
    run_id = uuid.uuid4().hex
    catalog = lake.open_catalog(cfg.lake)
    ns = cfg.lake.namespace
    raw = lake.ensure_table(catalog, ns, "raw_docs")
    decisions_t = lake.ensure_table(catalog, ns, "doc_decisions")
    clean_t = lake.ensure_table(catalog, ns, "clean_docs")
    scratch = Path(cfg.lake.root).absolute() / "tmp" / f"curate-{run_id}"
    try:
        raw_df = read_table_df(spark, raw).select("doc_id", "text", *SOURCE_COLUMNS)
        schema = curated_schema()
        curated = raw_df.mapInArrow(_filter_partitions(cfg.curate), from_arrow_schema(schema))
        # materialize once: filters are the expensive step and both dedup and the outputs read the result
        curated.write.parquet(str(scratch / "curated"))
        curated = spark.read.parquet(str(scratch / "curated"))
        dups = _duplicates(curated.filter(F.col("reason").isNull()), cfg.curate, str(scratch / "checkpoints"))
        decided = (
            curated.join(dups, "doc_id", "left")
            .withColumn("decision", F.when(F.col("reason").isNotNull(), "filtered")
                        .when(F.col("dup_reason").isNotNull(), "duplicate").otherwise("kept"))
            .withColumn("reason", F.coalesce("reason", "dup_reason"))
        )
        decided.write.parquet(str(scratch / "decided"))
        decided = spark.read.parquet(str(scratch / "decided"))

        dec_schema = TABLES["doc_decisions"].arrow_schema
        clean_schema = TABLES["clean_docs"].arrow_schema
        dec_files, n_dec = write_df_files(decided.select(*dec_schema.names), decisions_t, dec_schema,
                                          prefix=f"curate-{run_id[:8]}")
        kept = decided.filter(F.col("decision") == "kept").select(*clean_schema.names)
        clean_files, n_clean = write_df_files(kept, clean_t, clean_schema, prefix=f"curate-{run_id[:8]}")
        counts = _decision_counts(decided)
        summary = lake.snapshot_summary(cfg, "curate", run_id, {
            "tokenmill.raw_snapshot_id": str(raw.current_snapshot().snapshot_id if raw.current_snapshot() else ""),
            **{f"tokenmill.count.{k}": str(v) for k, v in counts.items()},
        })
        snapshots = {
            "doc_decisions": lake.commit_files(decisions_t, dec_files, summary, overwrite=True),
            "clean_docs": lake.commit_files(clean_t, clean_files, summary, overwrite=True),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if n_dec != counts["raw_docs"] or n_clean != counts["kept"]:
        raise RuntimeError(f"curate wrote {n_dec} decisions / {n_clean} clean docs for {counts}")
    return StageReport(stage="curate", counts=counts, snapshots=snapshots,
                       outputs={"clean_docs": f"{ns}.clean_docs", "doc_decisions": f"{ns}.doc_decisions"})


def _decision_counts(decided: DataFrame) -> dict[str, int]:
    rows = decided.groupBy("decision", "reason").count().collect()
    counts: dict[str, int] = {"raw_docs": 0, "kept": 0, "filtered": 0, "duplicate": 0}
    for r in sorted(rows, key=lambda r: (r["decision"], r["reason"] or "")):
        counts["raw_docs"] += r["count"]
        counts[r["decision"]] += r["count"]
        if r["reason"]:
            counts[f"{r['decision']}_{r['reason']}"] = r["count"]
    return counts
