"""The curate stage on Spark: normalize and filter raw_docs (whole Arrow batches in mapInArrow), exact then
near dedup among the documents that pass, and one doc_decisions row per raw document.

Full mode replaces both output tables as a whole, so a re-run gives the same tables (the keep rule is
deterministic), and rebuilds dedup_index (signatures and band keys of the kept documents). Incremental mode
(`curate.dedup.incremental`) appends decisions for the raw docs that have none, deduplicated against the
documents kept before (see `run_curate_incremental`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

from dedup.exact import text_hash128_hex
from dedup.incremental import dedup_index_params
from dedup.incremental.spark import OldRows, duplicates_incremental, index_rows, is_in_match
from dedup.keep import arrival_first
from dedup.local import signature_columns
from dedup.spark import duplicates
from dedup.steps.spark import ColumnReader, Steps
from dedup.threads import thread_budget
from pipelines import lake
from pipelines.config import Config, CurateConfig
from pipelines.errors import StageInputError, StageOutputError
from pipelines.filters import curate_batch
from pipelines.lake.files.spark import (
    RowMatch,
    materialize,
    read_matching_df,
    read_units_df,
    table_units,
)
from pipelines.lake.spark import read_data_files_df, read_input_df, read_table_df, write_df_files
from pipelines.lake.summary import (
    CLEAN_LINK,
    COUNT_PREFIX,
    CURATE_MODE,
    DECISIONS_LINK,
    INDEX_PARAMS,
    RAW_SNAPSHOT,
)
from pipelines.sources.failpoints import failpoint
from pipelines.stages.curate.mode import choose_mode
from pipelines.stages.curate.mode import stage_params as curate_params
from pipelines.stages.curate.outputs import (
    DECIDED_EXTRA,
    OUTPUTS_ARROW,
    OutputFiles,
    decide_batch,
    outputs_writer,
    tally,
)
from pipelines.stages.curate.steps import steps_dir, steps_s3
from pipelines.stages.report import StageReport
from pipelines.stages.snapshots import STAGE_PARAMS, InputPlan, appended_rows, log_plan
from schemas import TABLES
from schemas.raw_docs import SOURCE_FIELDS
from schemas.signals import SIGNAL_FIELDS

log = logging.getLogger(__name__)

SOURCE_COLUMNS = [f.name for f in SOURCE_FIELDS]
# when a raw doc arrived (one timestamp per ingest commit): it leads the keep rule and the choice among repeated
# doc_ids, so a published document keeps priority over a later duplicate in incremental and full runs alike
ARRIVAL = "ingested_at"
RAW_COLUMNS = ["doc_id", "text", *SOURCE_COLUMNS, ARRIVAL]
SIGNAL_COLUMNS = [f.name for f in SIGNAL_FIELDS]
# MinHash signature and band keys of a document that passed the filters, computed in the filter pass (null
# for filtered documents and documents without shingles); near dedup and dedup_index read them
SIGNATURE_COLUMNS = ["signature", "band_keys"]
# an incremental batch of at most this many raw rows is ranked once on the executors and its doc_ids broadcast
SMALL_BATCH_ROWS = 1_000_000


def curated_schema() -> pa.Schema:
    """Rows leaving the filter step: the raw row's identity and source, the final text, reason, hash, signals,
    and the MinHash signature and band keys of a document that passed (SIGNATURE_COLUMNS)."""
    clean = TABLES["clean_docs"].arrow_schema
    return pa.schema([clean.field("doc_id"), clean.field("text"), *(clean.field(c) for c in SOURCE_COLUMNS),
                      TABLES["raw_docs"].arrow_schema.field(ARRIVAL), pa.field("reason", pa.string()),
                      clean.field("exact_hash"), *(clean.field(c) for c in SIGNAL_COLUMNS),
                      pa.field("signature", pa.binary()), pa.field("band_keys", pa.list_(pa.int64()))])


def _filter_partitions(cfg: CurateConfig) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    schema = curated_schema()

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with thread_budget():  # the task's share of the executor, not every core (dedup.threads)
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                out = curate_batch(batch, normalize=cfg.normalize, filters=list(cfg.filters))
                columns = {name: out.column(name) for name in out.schema.names}
                columns["exact_hash"] = text_hash128_hex(columns["text"])
                passed = pc.is_null(columns["reason"])
                if cfg.dedup.near:  # in the same pass: a filtered document's empty text gets a null signature
                    columns["signature"], columns["band_keys"] = signature_columns(
                        pc.if_else(passed, columns["text"], ""), cfg.dedup)
                for name in (*SOURCE_COLUMNS, ARRIVAL):
                    columns[name] = batch.column(name)
                arrays = [columns[f.name] if f.name in columns else pa.nulls(batch.num_rows, f.type) for f in schema]
                yield pa.RecordBatch.from_arrays([a.cast(f.type) for a, f in zip(arrays, schema, strict=True)],
                                                 schema=schema)

    return run


def _duplicates(passed: DataFrame, cfg: CurateConfig, checkpoint_dir: str,
                old: tuple[DataFrame, DataFrame, OldRows] | None = None, stats: dict[str, int] | None = None,
                steps: Steps | None = None, size: tuple[int, int] | None = None,
                reader: ColumnReader | None = None, driver_rows: list[pa.Table] | None = None) -> DataFrame | None:
    """(doc_id, cluster_id, kept_doc_id, similarity, verified_by, dup_reason) for every document removed as an
    exact or near duplicate (dedup.spark.duplicates: every kept_doc_id names a kept document).

    `old` = (clean_docs (doc_id, exact_hash), dedup_index rows, OldRows over both) of earlier kept documents
    (`_old_outputs`): the documents of `passed` are then deduplicated against those too, and the old ones
    always stay kept. The keep rule is
    `curate.dedup.keep` led by the arrival (`ingested_at`, dedup.keep.arrival_first): a full rebuild of a lake
    keeps the document that arrived first, as the incremental runs did. `stats` receives near dedup's
    component report; `size` (documents, text bytes of `passed`) saves a job when known; `reader` reads the
    rows of `passed` wherever dedup runs (dedup.spark.duplicates); `driver_rows` receives the result as
    Arrow when it was decided on the driver (a full run's driver plan, or an incremental batch), and None
    is then returned.
    """
    dedup_cfg = cfg.dedup.model_copy(update={"keep": arrival_first(cfg.dedup.keep, ARRIVAL)})
    keep_cols = [k.lstrip("-+") for k in dedup_cfg.keep]
    cols = list(dict.fromkeys(["doc_id", "text", "exact_hash", *keep_cols, *SIGNATURE_COLUMNS]))
    candidates = passed.select(*cols)
    if old is None:
        return duplicates(candidates, cfg=dedup_cfg, checkpoint_dir=checkpoint_dir, stats=stats, steps=steps,
                          size=size, reader=reader, driver_rows=driver_rows)
    return duplicates_incremental(candidates, old[0], old[1], cfg=dedup_cfg, checkpoint_dir=checkpoint_dir,
                                  stats=stats, steps=steps, size=size, reader=reader, old_rows=old[2],
                                  driver_rows=driver_rows)


def run_curate(spark: SparkSession, cfg: Config) -> StageReport:
    """raw_docs -> clean_docs (kept, normalized, with signals) and doc_decisions (every raw doc's fate).

    `pipelines.stages.curate.mode.choose_mode` picks the run: nothing when raw_docs and the params are unchanged
    (commits nothing, `report.skipped`); `run_curate_incremental` when raw_docs only grew; else full mode,
    which recomputes both tables from all of raw_docs and rebuilds dedup_index from the kept documents.
    """
    tables = _open_tables(cfg)
    plan = choose_mode(cfg, tables)
    log_plan("curate", plan)
    if plan.mode == "skip" or (plan.mode == "incremental" and not plan.files):
        report = _report(cfg, {"raw_docs": 0, "kept": 0, "filtered": 0, "duplicate": 0},
                         {name: _snapshot_id(t) for name, t in tables.items() if name != "raw_docs"})
        report.skipped = True
        return report
    if plan.mode == "incremental":
        return run_curate_incremental(spark, cfg, plan)
    run_id = uuid.uuid4().hex
    scratch = lake.scratch_dir(cfg.lake, f"curate-{run_id[:8]}")
    # filtered documents, signatures, edges and component rounds survive a killed run (pipelines.stages.curate.steps)
    steps = Steps(spark, steps_dir(cfg, _snapshot_id(tables["raw_docs"])), on_done=lambda n: failpoint(f"curate.{n}"),
                  s3=steps_s3(cfg))
    try:
        raw_df = read_input_df(spark, cfg, tables["raw_docs"]).select(*RAW_COLUMNS)
        primary, repeats = _split_repeated_ids(raw_df)
        curated = _filtered(spark, primary, cfg.curate, scratch, steps)
        size = _input_size(steps)
        # dedup reads the columns it needs of the persisted step itself: on the driver (small input, no job)
        # or in its one task (dedup.spark.duplicates)
        reader = steps.reader("curated", where=pc.field("reason").is_null())
        counts, snapshots = _dedup_and_commit(spark, cfg, tables, curated, repeats, run_id, scratch, steps, plan,
                                              overwrite=True, size=size, reader=reader)
    finally:
        lake.remove_tree(scratch)
    return _report(cfg, counts, snapshots)


def run_curate_incremental(spark: SparkSession, cfg: Config, plan: InputPlan | None = None) -> StageReport:
    """Curate only the raw docs without a decision, deduplicated among themselves and against the documents
    earlier runs kept (clean_docs.exact_hash, dedup_index); earlier decisions never change.

    Appends, in order, the new decisions, clean docs and index rows; each commit records the snapshot of the
    previous one (`tokenmill.decisions_snapshot_id`, `tokenmill.clean_snapshot_id`). A run first checks those
    links and completes what an interrupted run left undone (kept decisions without clean rows are re-derived
    from raw_docs; a stale index is rebuilt from clean_docs), so a crash between the commits is repaired by
    re-running. A run with nothing new commits nothing. `counts` describe this run's new documents.
    `plan.files` (when given) are the raw_docs data files appended since the last run: only their rows are
    candidates.
    """
    run_id = uuid.uuid4().hex
    tables = _open_tables(cfg)
    scratch = lake.scratch_dir(cfg.lake, f"curate-{run_id[:8]}")
    try:
        repaired = _repair_clean(spark, cfg, tables, run_id, scratch)
        if cfg.curate.dedup.near:
            repaired |= _repair_index(spark, cfg, tables, run_id)
        raw_all = (read_data_files_df(spark, tables["raw_docs"], plan.files, RAW_COLUMNS)
                   if plan is not None and plan.files else read_table_df(spark, tables["raw_docs"], columns=RAW_COLUMNS))
        # rows appended since the snapshot the last run consumed have no decision yet (every run decides every
        # row it reads); otherwise (completing an interrupted run) the decided rows are left out
        appended = plan is not None and plan.appended_since is not None
        tasks = spark.sparkContext.defaultParallelism  # earlier outputs: many small files, read a few per task
        rows = appended_rows(tables["raw_docs"], plan) if plan is not None else None
        if plan is not None and rows is not None and rows <= SMALL_BATCH_ROWS:
            primary, repeats = _split_small_batch(spark, tables, raw_all, plan.files, tasks)
        else:
            decided_rows = read_table_df(spark, tables["doc_decisions"], tasks=tasks,
                                         columns=["doc_id"] if appended else ["doc_id", *SOURCE_COLUMNS])
            raw_df = raw_all if appended else raw_all.join(decided_rows, _same_row(raw_all, decided_rows), "left_anti")
            # doc_ids decided before that arrive again
            known = decided_rows.select("doc_id").join(raw_df.select("doc_id"), "doc_id", "left_semi")
            primary, repeats = _split_repeated_ids(raw_df, known.distinct())
        # the same persisted steps as a full run, keyed also by the outputs this batch is curated against
        outputs = ",".join(str(_snapshot_id(tables[n])) for n in ("doc_decisions", "clean_docs", "dedup_index"))
        steps = Steps(spark, steps_dir(cfg, _snapshot_id(tables["raw_docs"]), f"incremental|{outputs}"),
                      on_done=lambda n: failpoint(f"curate.{n}"), s3=steps_s3(cfg))
        curated = _filtered(spark, primary, cfg.curate, scratch, steps)
        size = _input_size(steps)
        if not appended and curated.isEmpty() and repeats.isEmpty():
            steps.remove()
            log.info("curate: no raw docs without a decision%s", "; repaired the outputs" if repaired else "")
            report = _report(cfg, {"raw_docs": 0, "kept": 0, "filtered": 0, "duplicate": 0},
                             {name: _snapshot_id(t) for name, t in tables.items() if name != "raw_docs"})
            report.skipped = not repaired
            return report
        # the batch's own columns are read on the driver from the persisted step (no job)
        reader = steps.reader("curated", where=pc.field("reason").is_null())
        counts, snapshots = _dedup_and_commit(spark, cfg, tables, curated, repeats, run_id, scratch, steps, plan,
                                              overwrite=False, old=_old_outputs(spark, tables, tasks), size=size,
                                              reader=reader)
    finally:
        lake.remove_tree(scratch)
    return _report(cfg, counts, snapshots)


def _old_outputs(spark: SparkSession, tables: dict[str, Table], tasks: int) -> tuple[DataFrame, DataFrame, OldRows]:
    """What an incremental run deduplicates against: clean_docs (doc_id, exact_hash) and dedup_index rows as
    DataFrames (the distributed plan), and OldRows over the same data files, which reads only the key column
    of each file and the rest of a row group only when it holds a match (the one-task plan). Each table's
    files are planned once."""
    reads = {"hashes": (tables["clean_docs"], ["doc_id", "exact_hash"], ["exact_hash"]),
             "index": (tables["dedup_index"], ["doc_id", "signature", "band_keys"], ["band_keys"])}
    units = {kind: table_units(table) for kind, (table, _, _) in reads.items()}

    def schema(kind: str) -> pa.Schema:
        table, columns, _ = reads[kind]
        live = table.schema().as_arrow()
        return pa.schema([live.field(c) for c in columns])

    def old_rows(kind: str, match: RowMatch) -> DataFrame:
        table, _, keys = reads[kind]
        return read_matching_df(spark, units[kind], schema(kind), keys=keys, match=match, s3=lake.table_s3(table),
                                tasks=tasks)

    frames = [read_units_df(spark, units[k], schema(k), lake.table_s3(reads[k][0]), tasks) for k in ("hashes", "index")]
    return frames[0], frames[1], old_rows


def _split_small_batch(spark: SparkSession, tables: dict[str, Table], raw_df: DataFrame, files: list[str],
                       tasks: int) -> tuple[DataFrame, DataFrame]:
    """`_split_repeated_ids` of a small appended batch (`raw_df`, the rows of raw_docs data files `files`):
    its doc_ids are read on the driver, those decided before are looked up in doc_decisions by one job that
    returns only them; when no doc_id repeats (the usual case) every row is primary and no ranking runs."""
    ids = lake.read_files(files, ["doc_id"], lake.table_s3(tables["raw_docs"]))["doc_id"].combine_chunks()
    unique = pc.unique(ids.drop_null())
    decisions = tables["doc_decisions"]
    known = pa.table({"doc_id": pa.array([], pa.string())})
    if len(unique) and decisions.current_snapshot() is not None:
        known = read_matching_df(spark, table_units(decisions), pa.schema([pa.field("doc_id", pa.string())]),
                                 keys=["doc_id"], match=is_in_match("doc_id", unique.cast(pa.string())),
                                 s3=lake.table_s3(decisions), tasks=tasks).toArrow()
    if not known.num_rows and len(unique) == len(ids):
        return raw_df, raw_df.limit(0).withColumn("repeat_reason", F.lit(None).cast("string"))
    known_df = spark.createDataFrame(pa.table({"doc_id": pc.unique(known["doc_id"].combine_chunks())}))
    return _split_repeated_ids(raw_df, known_df, small=True)


def _dedup_and_commit(spark: SparkSession, cfg: Config, tables: dict[str, Table], curated: DataFrame,
                      repeats: DataFrame, run_id: str, scratch: str, steps: Steps, plan: InputPlan | None, *,
                      overwrite: bool, old: tuple[DataFrame, DataFrame, OldRows] | None = None,
                      size: tuple[int, int] | None = None,
                      reader: ColumnReader | None = None) -> tuple[dict[str, int], dict[str, int | None]]:
    """The tail a full and an incremental run share: deduplicate the documents that passed the filters (`old`:
    the earlier outputs an incremental run deduplicates against; `size`, `reader`: see `_duplicates`),
    decide, commit, then drop the persisted steps; the counts include the dedup statistics and steps resumed."""
    stats: dict[str, int] = {}
    driver_rows: list[pa.Table] = []
    dups = _duplicates(curated.filter(F.col("reason").isNull()), cfg.curate, f"{scratch}/checkpoints",
                       old=old, stats=stats, steps=steps, size=size, reader=reader, driver_rows=driver_rows)
    decided = _decide(spark, curated, dups, scratch, repeats, driver_rows[0] if driver_rows else None)
    counts, snapshots = _commit(spark, cfg, tables, decided, run_id, overwrite=overwrite, plan=plan)
    counts.update(stats)
    counts["resumed_steps"] = len(steps.reused)
    counts["resumed_rows"] = sum(steps.resumed_rows.values())
    steps.remove()
    return counts, snapshots


def _open_tables(cfg: Config) -> dict[str, Table]:
    catalog = lake.open_catalog(cfg.lake)
    names = ("raw_docs", "doc_decisions", "clean_docs", "dedup_index")
    return {name: lake.ensure_table(catalog, cfg.lake.namespace, name) for name in names}


def _snapshot_id(table: Table) -> int | None:
    snap = table.current_snapshot()
    return snap.snapshot_id if snap else None


def _filtered(spark: SparkSession, raw_df: DataFrame, cfg: CurateConfig, scratch: str,
              steps: Steps | None = None) -> DataFrame:
    """Normalized and filtered rows (curated_schema), materialized once under `scratch` (a URI): filters are
    the expensive step and dedup and the outputs all read the result. With `steps`, the persisted step
    `curated`: a run killed during it reuses every task file it finished (keyed by doc_id: `raw_df` holds
    one row per doc_id, `_split_repeated_ids`), and its notes give dedup's input size (`_input_size`)."""
    schema = from_arrow_schema(curated_schema())
    if steps is not None and steps.folder is not None:  # a persisted step (pipelines.stages.curate.steps)
        # the filters and the write in one pass: each task's rows go to Python once
        return steps.materialize("curated", lambda: raw_df, transform=_filter_partitions(cfg), schema=schema,
                                 resume_by="doc_id", file_notes=_passed_size)
    return materialize(raw_df.mapInArrow(_filter_partitions(cfg), schema), f"{scratch}/curated")


def _passed_size(rows: pa.Table) -> dict[str, int]:
    """Inside a task: the documents of a `curated` file that passed the filters and their text bytes."""
    texts = rows.column("text").filter(pc.is_null(rows.column("reason")))
    return {"passed_docs": len(texts), "passed_text_bytes": int(pc.sum(pc.binary_length(texts)).as_py() or 0)}


def _input_size(steps: Steps) -> tuple[int, int] | None:
    """(documents, text bytes) dedup reads, from the `curated` step's notes (None: dedup counts them)."""
    notes = steps.notes("curated")
    return (notes["passed_docs"], notes["passed_text_bytes"]) if "passed_docs" in notes else None


def _same_row(left: DataFrame, right: DataFrame) -> Column:
    """Join condition of one raw record: its doc_id and source coordinates (null-safe)."""
    cond = left["doc_id"] == right["doc_id"]
    for name in SOURCE_COLUMNS:
        cond = cond & left[name].eqNullSafe(right[name])
    return cond


def _split_repeated_ids(raw_df: DataFrame, known_ids: DataFrame | None = None, *,
                        small: bool = False) -> tuple[DataFrame, DataFrame]:
    """(primary, repeats) of `raw_df` (RAW_COLUMNS): of the raw rows sharing a doc_id, one is curated: from the
    object (source type, URI, partition) whose first version arrived first (`ingested_at`; a Kafka record's
    own), then by source coordinates; within that object its newest version (the latest ingest of it: an
    object is read again only once listing shows it changed, and ingest serialises the runs that read one
    object); then the first by line/row/offset, then text. The others become duplicates: reason `superseded`
    for an older version of the same object, `doc_id` for any other repeat; rows whose doc_id already has a
    decision (`known_ids`, distinct) too (reason `doc_id`). Deterministic for any partitioning. `small`: the
    rows are few (an incremental batch): the ranking is computed once, kept on the executors (a local
    checkpoint) for both results, with `known_ids` broadcast."""
    is_object = F.col("source_type") != "kafka"
    arrived = F.when(is_object, F.min(ARRIVAL).over(Window.partitionBy("doc_id", *SOURCE_COLUMNS[:3]))) \
        .otherwise(F.col(ARRIVAL))
    newest_first = F.when(is_object, F.col(ARRIVAL))
    order = [F.col("_arrived").asc_nulls_last(), *(F.col(c).asc_nulls_first() for c in SOURCE_COLUMNS[:3]),
             newest_first.desc_nulls_last(), *(F.col(c).asc_nulls_first() for c in (SOURCE_COLUMNS[3], "text"))]
    window = Window.partitionBy("doc_id").orderBy(*order)
    ranked = (raw_df.withColumn("_arrived", arrived).withColumn("_rank", F.row_number().over(window))
              .withColumn("_first_uri", F.first("source_uri").over(window))
              .withColumn("_first_at", F.first(newest_first).over(window)))
    superseded = is_object & F.col("source_uri").eqNullSafe(F.col("_first_uri")) & \
        (F.col(ARRIVAL) < F.col("_first_at"))
    helpers = ("_rank", "_arrived", "_first_uri", "_first_at", "_known")
    if known_ids is not None and small:
        known_col = F.broadcast(known_ids.select("doc_id", F.lit(True).alias("_known")))
        ranked = ranked.join(known_col, "doc_id", "left").localCheckpoint()
        repeat = (F.col("_rank") > 1) | F.col("_known").isNotNull()  # a known doc_id's first row: superseded is false
        return (ranked.where(~repeat).drop(*helpers),
                ranked.where(repeat).withColumn("repeat_reason", F.when(superseded, "superseded").otherwise("doc_id"))
                .drop(*helpers))
    primary = ranked.where(F.col("_rank") == 1).drop(*helpers)
    repeats = (ranked.where(F.col("_rank") > 1)
               .withColumn("repeat_reason", F.when(superseded, "superseded").otherwise("doc_id")).drop(*helpers))
    if known_ids is not None:
        repeats = repeats.unionByName(primary.join(known_ids, "doc_id", "left_semi")
                                      .withColumn("repeat_reason", F.lit("doc_id")))
        primary = primary.join(known_ids, "doc_id", "left_anti")
    return primary, repeats


def _decide(spark: SparkSession, curated: DataFrame, dups: DataFrame | None, scratch: str,
            repeats: DataFrame, driver_dups: pa.Table | None = None) -> DataFrame:
    """Every raw row's decision: filtered (its reason), duplicate (exact/near, `superseded` for an older
    version of a rewritten object, `doc_id` for another repeated id),
    else kept; kept rows get cluster_size (raw documents they stand for, themselves included; a repeated
    doc_id is the same document ingested twice and does not count). `driver_dups`: the rows of `dups` as
    Arrow on the driver (a batch decided there; `dups` is then None): they travel with the tasks
    (`decide_batch`), no join."""
    if driver_dups is not None:
        fields = [*curated.schema.fields, *(f for f in from_arrow_schema(DECIDED_EXTRA).fields)]
        decided = curated.mapInArrow(_decide_with(driver_dups), StructType(fields))
    else:
        if dups is None:
            raise ValueError("_decide needs the duplicates as a DataFrame or as driver_dups")
        # a kept document stands for itself and every duplicate naming it (exact and near, of this run)
        sizes = dups.groupBy(F.col("kept_doc_id").alias("doc_id")).agg(F.count(F.lit(1)).alias("_n_dups"))
        decided = (
            curated.join(dups, "doc_id", "left").join(sizes, "doc_id", "left")
            .withColumn("decision", F.when(F.col("reason").isNotNull(), "filtered")
                        .when(F.col("dup_reason").isNotNull(), "duplicate").otherwise("kept"))
            .withColumn("reason", F.coalesce("reason", "dup_reason"))
            .withColumn("cluster_size", F.when(F.col("decision") == "kept",
                                               F.lit(1).cast("long") + F.coalesce("_n_dups", F.lit(0))))
            .drop("dup_reason", "_n_dups")
        )
    repeated = repeats.select(
        "doc_id", *SOURCE_COLUMNS, F.lit("duplicate").alias("decision"), F.col("repeat_reason").alias("reason"),
        F.col("doc_id").alias("cluster_id"), F.col("doc_id").alias("kept_doc_id"))
    # not materialized: one pass writes every output from it (`_write_outputs`)
    return decided.unionByName(repeated, allowMissingColumns=True)


def _decide_with(dups: pa.Table) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from decide_batch(pa.Table.from_batches([batch]), dups).to_batches()

    return run


def _commit(spark: SparkSession, cfg: Config, tables: dict[str, Table], decided: DataFrame, run_id: str, *,
            overwrite: bool, plan: InputPlan | None = None) -> tuple[dict[str, int], dict[str, int | None]]:
    """Write and commit decisions, then clean docs, then (near dedup on) index rows of the kept documents,
    each commit naming the snapshot of the one before. `overwrite` replaces the tables, else appends."""
    raw = tables["raw_docs"]
    near = cfg.curate.dedup.near
    files, counts = _write_outputs(decided, tables, cfg, f"curate-{run_id[:8]}")
    if counts.pop("clean_rows") != counts["kept"]:
        raise StageOutputError(f"curate wrote clean docs for another number of kept documents: {counts}")
    index_n = counts.pop("index_rows", 0)
    failpoint("curate.before_commit")
    summary = lake.snapshot_summary(cfg, "curate", run_id, {
        RAW_SNAPSHOT: str(_snapshot_id(raw) or ""),
        CURATE_MODE: "full" if overwrite else "incremental",
        **{f"{COUNT_PREFIX}{k}": str(v) for k, v in counts.items()},
        **(plan.summary() if plan is not None else {}), STAGE_PARAMS: curate_params(cfg),
    })
    snapshots: dict[str, int | None] = {}
    snapshots["doc_decisions"] = _commit_linked(tables["doc_decisions"], files["doc_decisions"], summary, overwrite)
    failpoint("curate.between_commits")
    snapshots["clean_docs"] = _commit_linked(tables["clean_docs"], files["clean_docs"],
                                             {**summary, DECISIONS_LINK: str(snapshots["doc_decisions"])}, overwrite)
    if near:
        snapshots["dedup_index"] = _commit_index(tables["dedup_index"], files["dedup_index"], index_n, cfg, summary,
                                                 snapshots["clean_docs"], overwrite=overwrite)
    return counts, snapshots


def _commit_linked(table: Table, files: list[str], summary: dict[str, str], overwrite: bool) -> int | None:
    # an empty table is appended to even when overwriting, so that the commit (and its link) always lands
    return lake.commit_files(table, files, summary, overwrite=overwrite and table.current_snapshot() is not None)


def _commit_index(index_t: Table, files: list[str], n: int, cfg: Config, summary: dict[str, str],
                  clean_snapshot: int | None, *, overwrite: bool) -> int | None:
    """Commit dedup_index data files (`n` rows), linked to the clean_docs snapshot."""
    log.info("dedup_index: %d rows (%s)", n, "rebuilt" if overwrite else "appended")
    return _commit_linked(index_t, files, {
        **summary, CLEAN_LINK: str(clean_snapshot or ""), INDEX_PARAMS: dedup_index_params(cfg.curate.dedup),
    }, overwrite)


def _repair_clean(spark: SparkSession, cfg: Config, tables: dict[str, Table], run_id: str, scratch: str) -> bool:
    """Give every kept decision its clean_docs row when the last decisions commit has no matching clean_docs
    commit (a run stopped between the two). True when something was committed.

    Raises StageInputError when clean_docs holds documents that are not kept (a full run stopped midway):
    a full curate must rebuild the tables.
    """
    decisions, clean = tables["doc_decisions"], tables["clean_docs"]
    dec_snap = _snapshot_id(decisions)
    if dec_snap is None:
        if lake.read_table(clean, ("doc_id",)).num_rows:
            raise StageInputError("clean_docs has rows but doc_decisions is empty: run a full curate "
                                  "(curate.dedup.incremental=false)")
        return False
    if lake.last_summary(clean).get(DECISIONS_LINK) == str(dec_snap):
        return False
    kept_ids = read_table_df(spark, decisions).where(F.col("decision") == "kept").select("doc_id")
    clean_ids = read_table_df(spark, clean).select("doc_id")
    extra = [r["doc_id"] for r in clean_ids.join(kept_ids, "doc_id", "left_anti").limit(5).collect()]
    if extra:
        raise StageInputError(f"clean_docs holds documents without a 'kept' decision (e.g. {extra}); an earlier "
                              "full curate did not finish: run curate with curate.dedup.incremental=false")
    missing = kept_ids.join(clean_ids, "doc_id", "left_anti")
    raw_df = read_table_df(spark, tables["raw_docs"]).select(*RAW_COLUMNS)
    rows = _filtered(spark, raw_df.join(missing, "doc_id", "left_semi"), cfg.curate, f"{scratch}/repair")
    dec_cols = read_table_df(spark, decisions).columns
    size = (F.col("cluster_size") if "cluster_size" in dec_cols else F.lit(None).cast("long")).alias("cluster_size")
    sizes = read_table_df(spark, decisions).where(F.col("decision") == "kept").select("doc_id", size)
    rows = rows.join(sizes, "doc_id", "left")
    clean_schema = TABLES["clean_docs"].arrow_schema
    files, n = write_df_files(rows.select(*clean_schema.names), clean, clean_schema, prefix=f"curate-{run_id[:8]}")
    log.warning("curate: completing an interrupted run: %d kept documents had no clean_docs row", n)
    summary = lake.snapshot_summary(cfg, "curate", run_id, {
        CURATE_MODE: "repair", DECISIONS_LINK: str(dec_snap)})
    _commit_linked(clean, files, summary, overwrite=False)
    return True


def _repair_index(spark: SparkSession, cfg: Config, tables: dict[str, Table], run_id: str) -> bool:
    """Rebuild dedup_index from clean_docs when its last commit does not match the current clean_docs
    snapshot or was made with other dedup parameters. True when it was rebuilt."""
    index, clean = tables["dedup_index"], tables["clean_docs"]
    last = lake.last_summary(index)
    params = dedup_index_params(cfg.curate.dedup)
    if last.get(INDEX_PARAMS) == params and last.get(CLEAN_LINK) == str(_snapshot_id(clean) or ""):
        return False
    log.warning("curate: rebuilding dedup_index from clean_docs (%s)",
                "parameters changed" if INDEX_PARAMS in last and last[INDEX_PARAMS] != params else "out of date")
    summary = lake.snapshot_summary(cfg, "curate", run_id, {CURATE_MODE: "repair"})
    rows = index_rows(read_table_df(spark, clean), cfg.curate.dedup)
    files, n = write_df_files(rows, index, TABLES["dedup_index"].arrow_schema, prefix=f"curate-{run_id[:8]}")
    _commit_index(index, files, n, cfg, summary, _snapshot_id(clean), overwrite=True)
    return True


def _report(cfg: Config, counts: dict[str, int], snapshots: dict[str, int | None]) -> StageReport:
    ns = cfg.lake.namespace
    return StageReport(stage="curate", counts=counts, snapshots=snapshots,
                       outputs={"clean_docs": f"{ns}.clean_docs", "doc_decisions": f"{ns}.doc_decisions",
                                "dedup_index": f"{ns}.dedup_index"})


def _write_outputs(decided: DataFrame, tables: dict[str, Table], cfg: Config, prefix: str
                   ) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Write the decisions, clean docs and (near dedup on) index rows in one job (one data file of each per
    partition, nothing committed) and count them in the same pass: the files per table, and the counts
    raw_docs, kept, filtered, duplicate, `<decision>_<reason>`, clean_rows and index_rows."""
    dedup = cfg.curate.dedup if cfg.curate.dedup.near else None
    where = {name: OutputFiles(directory=lake.data_dir(tables[name]), s3=lake.table_s3(tables[name]),
                               schema=lake.file_schema(tables[name], TABLES[name].arrow_schema))
             for name in ("doc_decisions", "clean_docs", *(["dedup_index"] if dedup is not None else []))}
    rows = decided.mapInArrow(outputs_writer(where, dedup, prefix), from_arrow_schema(OUTPUTS_ARROW)).collect()
    return tally([r.asDict() for r in rows])
