"""The audit's per-document checks as Spark aggregates: the tasks read the tables (pyarrow, `read_table_df`)
and the driver receives counts and at most five examples, never a column with a row per document, so its
memory does not grow with the corpus.

Multiset equality of two doc_id columns is a full outer join of their per-doc_id counts (null-safe, so a
null doc_id matches a null one); duplicate source identities are a group-by over the identity columns whose
allowance comes from the ingest ledgers (one row per object, small) joined in.
"""

from __future__ import annotations

from pyiceberg.table import Table
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.lake.spark import read_table_df
from pipelines.sources.identity import KEY_COLUMNS, allowed_repeats_of_objects, kafka_offsets_were_reset

EXAMPLES = 5


def doc_ids(spark: SparkSession, table: Table | None, column: str = "doc_id") -> DataFrame:
    """One column `doc_id` with the table's current rows (empty for a missing or never committed table)."""
    if table is None:
        return spark.createDataFrame([], "doc_id string")
    return read_table_df(spark, table, columns=[column]).select(F.col(column).alias("doc_id"))


def same_ids(a: DataFrame, b: DataFrame) -> tuple[bool, str]:
    """(equal as multisets, detail): `'N vs M rows'` when the row counts differ, else `'same doc_ids'` or
    `'doc_ids differ'`."""
    ca = a.groupBy("doc_id").agg(F.count(F.lit(1)).alias("na"))
    cb = b.groupBy(F.col("doc_id").alias("doc_id_b")).agg(F.count(F.lit(1)).alias("nb"))
    row = ca.join(cb, ca["doc_id"].eqNullSafe(cb["doc_id_b"]), "full_outer").agg(
        F.coalesce(F.sum("na"), F.lit(0)).alias("rows_a"),
        F.coalesce(F.sum("nb"), F.lit(0)).alias("rows_b"),
        F.coalesce(F.sum(F.when(F.coalesce("na", F.lit(0)) != F.coalesce("nb", F.lit(0)), 1)), F.lit(0)
                   ).alias("differ"),
    ).first()
    assert row is not None  # a global aggregate has one row
    if row["rows_a"] != row["rows_b"]:
        return False, f"{row['rows_a']} vs {row['rows_b']} rows"
    return (True, "same doc_ids") if row["differ"] == 0 else (False, "doc_ids differ")


def decision_counts(decisions: DataFrame) -> dict[str, int]:
    """decision -> rows (a handful of groups)."""
    return {r["decision"]: int(r["count"]) for r in decisions.groupBy("decision").count().collect()}


def kept_unique(kept: DataFrame) -> tuple[int, bool]:
    """(kept rows, whether their non-null doc_ids are all distinct)."""
    row = kept.agg(F.count(F.lit(1)).alias("n"), F.countDistinct("doc_id").alias("distinct")).first()
    assert row is not None
    return int(row["n"]), row["distinct"] == row["n"]


def column_sum(spark: SparkSession, table: Table, column: str) -> int:
    row = read_table_df(spark, table, columns=[column]).agg(F.sum(column).alias("s")).first()
    return int(row["s"] or 0) if row is not None else 0


def duplicate_identities(spark: SparkSession, raw_docs: Table, quarantine: Table | None) -> tuple[int, list[str]]:
    """(rows beyond what an identity may repeat, up to five examples), the rule of
    `pipelines.sources.identity`, aggregated by Spark."""
    columns = [*KEY_COLUMNS, "run_id"]
    frames = [read_table_df(spark, t, columns=columns) for t in (raw_docs, quarantine) if t is not None]
    rows = frames[0]
    for other in frames[1:]:
        rows = rows.unionByName(other.select(*[F.col(c).cast(rows.schema[c].dataType) for c in columns]))
    groups = rows.groupBy(*KEY_COLUMNS).agg(F.count("run_id").alias("n"), F.countDistinct("run_id").alias("k")
                                            ).filter(F.col("n") > 1)
    versions = allowed_repeats_of_objects(raw_docs)
    ledger = spark.createDataFrame(list(versions.items()), "source_uri string, versions long")
    kafka_allowed = F.col("k") if kafka_offsets_were_reset(raw_docs) else F.lit(1)
    judged = groups.join(F.broadcast(ledger), "source_uri", "left").withColumn(
        "allowed",
        F.when(F.col("source_type") == "kafka", kafka_allowed)
        .when(F.col("k") <= F.greatest(F.lit(1), F.coalesce("versions", F.lit(0))), F.col("k"))
        .otherwise(F.lit(1)),
    ).withColumn("extra", F.col("n") - F.col("allowed")).filter(F.col("extra") > 0)
    total = judged.agg(F.sum("extra").alias("extra")).first()
    extra = int(total["extra"] or 0) if total is not None else 0
    if extra == 0:
        return 0, []
    examples = []
    for row in judged.limit(EXAMPLES).collect():
        where = row["source_uri"] if row["source_partition"] is None else \
            f"{row['source_uri']}/{row['source_partition']}"
        examples.append(f"{where}@{row['source_offset']} x{row['n']}")
    return extra, examples
