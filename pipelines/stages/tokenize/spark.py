"""Spark glue of the tokenize stage (clean_docs -> tokens) and of offline tokenizer training.

Each task encodes its Arrow batches with the tokenizer's own `encode_batch` and writes the Parquet data files
itself, so a document's text crosses from the JVM to Python once and its tokens never go back.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table
from pyspark.sql import DataFrame, SparkSession

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import StageInputError
from pipelines.lake import summary as keys
from pipelines.lake.spark import read_data_files_df, read_input_df, read_table_df
from pipelines.sources.failpoints import failpoint
from pipelines.stages.report import StageReport
from pipelines.stages.snapshots import (
    STAGE_PARAMS,
    appended_rows,
    input_snapshot,
    log_plan,
    params_digest,
    plan_input,
)
from pipelines.stages.tokenize.encoder import (
    Encoder,
    TokenizerSpec,
    cached_encoder,
    encode_texts,
    load_spec,
    tokenizer_info,
)
from pipelines.stages.tokenize.train import save_tokenizer, train_bpe, training_reason, write_training_record
from pipelines.storage import S3Options
from schemas.tokens import TABLE as TOKENS
from sharding.write.plan import order_hash

log = logging.getLogger(__name__)

TASK_RESULT_SCHEMA = "path string, rows long, tokens long, bytes_in long"
# an input of at most this many documents is encoded where it is read: a shuffle to spread it over the cores
# (a job, the texts written and read again) costs more than one core spends on it
SPREAD_MIN_ROWS = 5_000
CODE_VERSION = "1"  # bump when the tokens written for the same input and tokenizer change


def tokenizer_spec(cfg: Config) -> TokenizerSpec:
    t = cfg.tokenize
    return load_spec(
        t.tokenizer, kind=t.format, eod_token=t.eod_token, bos_token=t.bos_token,
        tiktoken_pattern=t.tiktoken_pattern, tiktoken_eod_id=t.tiktoken_eod_id,
    )


def _source_column(batch: pa.RecordBatch) -> pa.Array:
    stype = pc.fill_null(batch.column("source_type").cast(pa.large_string()), "")
    suri = pc.fill_null(batch.column("source_uri").cast(pa.large_string()), "")
    return pc.binary_join_element_wise(stype, suri, pa.scalar(":", pa.large_string()))


def _tokenize_partition(
    spec: TokenizerSpec, *, bos: bool, eos: bool, batch_size: int, file_target_bytes: int, directory: str,
    prefix: str, s3: S3Options | None = None, schema: pa.Schema = TOKENS.arrow_schema,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        encoder = cached_encoder(spec)
        pieces: list[pa.Table] = []
        held = rows = tokens = bytes_in = 0
        paths: list[str | None] = []
        for batch in batches:
            if not batch.num_rows:
                continue
            text = pc.fill_null(batch.column("text").cast(pa.large_string()), "")
            bytes_in += int(pc.sum(pc.binary_length(text)).as_py() or 0)
            ids, n_tokens = encode_texts(encoder, text.to_pylist(), bos=bos, eos=eos, batch_size=batch_size)
            out = pa.Table.from_arrays(
                [batch.column("doc_id").cast(pa.large_string()), ids, pa.array(n_tokens, pa.int32()),
                 _source_column(batch)],
                schema=schema,
            )
            pieces.append(out)
            held += ids.nbytes
            rows += out.num_rows
            tokens += int(n_tokens.sum(dtype=np.int64))
            if held >= file_target_bytes:
                paths.append(lake.write_data_file(directory, pa.concat_tables(pieces), prefix=prefix, s3=s3))
                pieces, held = [], 0
        if pieces:
            paths.append(lake.write_data_file(directory, pa.concat_tables(pieces), prefix=prefix, s3=s3))
        files = [p for p in paths if p]
        # Counts ride on the first row; a partition with no data still reports its zeros.
        yield pa.RecordBatch.from_pydict({
            "path": list(files) if files else [None],
            "rows": [rows] + [0] * (max(len(files), 1) - 1),
            "tokens": [tokens] + [0] * (max(len(files), 1) - 1),
            "bytes_in": [bytes_in] + [0] * (max(len(files), 1) - 1),
        })

    return run


def _clean_docs_table(cfg: Config) -> Table:
    catalog = lake.open_catalog(cfg.lake)
    table = lake.load_table(catalog, cfg.lake.namespace, "clean_docs")
    if table is None:
        raise StageInputError(f"table {cfg.lake.namespace}.clean_docs does not exist; run curate first")
    return table


def _clean_docs(spark: SparkSession, cfg: Config) -> DataFrame:
    return read_input_df(spark, cfg, _clean_docs_table(cfg))


def tokenize_df(df: DataFrame, spec: TokenizerSpec, cfg: Config, table: Table, prefix: str,
                rows: int | None = None) -> DataFrame:
    """The per-task results (data file path, rows, tokens, bytes_in) of tokenizing clean_docs rows `df` into
    data files of the tokens `table` (not committed). Input in fewer partitions than cores is spread over
    them by a shuffle, unless it is known (`rows`) to hold at most SPREAD_MIN_ROWS rows: then each task
    encodes the rows it reads (one job)."""
    df = df.select("doc_id", "text", "source_type", "source_uri")
    cores = df.sparkSession.sparkContext.defaultParallelism
    if df.rdd.getNumPartitions() < cores and (rows is None or rows > SPREAD_MIN_ROWS):
        df = df.repartition(cores)  # a small table is one file; spread it over the cores
    t = cfg.tokenize
    return df.mapInArrow(
        _tokenize_partition(spec, bos=t.bos, eos=t.eos, batch_size=t.batch_size,
                            file_target_bytes=t.file_target_bytes, directory=lake.data_dir(table), prefix=prefix,
                            s3=cfg.lake.task_s3(),
                            schema=lake.file_schema(table, TOKENS.arrow_schema)),
        TASK_RESULT_SCHEMA,
    )


def stage_params(cfg: Config, spec: TokenizerSpec) -> str:
    """What fixes the tokens of a document: the tokenize config (not the tokenizer's path, training settings
    or batch and file sizes), the tokenizer file's sha256 and the code version."""
    t = cfg.tokenize.model_dump(mode="json", exclude={"tokenizer", "train", "batch_size", "file_target_bytes"})
    return params_digest("tokenize", CODE_VERSION, t, spec.sha256)


def run_tokenize(spark: SparkSession, cfg: Config) -> StageReport:
    """clean_docs -> tokens, incrementally: only the clean docs appended since the snapshot the last run
    consumed are encoded and appended (see `pipelines.stages.snapshots`); a rewritten clean_docs, another tokenizer
    or other tokenize params rebuild the table (reason logged and in the snapshot summary); nothing new
    commits nothing (`report.skipped`).

    Counts: docs, tokens, bytes_in (UTF-8 bytes of text) of this run. MissingDependencyError when the
    tokenizer file is missing, StageInputError when clean_docs does not exist.
    """
    start = time.monotonic()
    run_id = uuid.uuid4().hex
    spec = tokenizer_spec(cfg)
    info = tokenizer_info(Encoder(spec))
    catalog = lake.open_catalog(cfg.lake)
    clean = _clean_docs_table(cfg)
    table = lake.ensure_table(catalog, cfg.lake.namespace, TOKENS)
    params = stage_params(cfg, spec)
    plan = plan_input(clean, lake.last_summary(table), params, snapshot_id=input_snapshot(cfg, clean))
    log_plan("tokenize", plan)
    outputs = {"table": f"{cfg.lake.namespace}.tokens", "tokenizer": cfg.tokenize.tokenizer}
    if plan.mode == "skip" or (plan.mode == "incremental" and not plan.files):
        snap = table.current_snapshot()
        return StageReport(stage="tokenize", counts={"docs": 0, "tokens": 0, "bytes_in": 0},
                           snapshots={"tokens": snap.snapshot_id if snap else None}, outputs=outputs,
                           seconds=time.monotonic() - start, skipped=True)
    if plan.files:
        docs = read_data_files_df(spark, clean, plan.files)
    else:  # an empty input table
        docs = read_table_df(spark, clean, plan.snapshot_id)
    results = tokenize_df(docs, spec, cfg, table, f"tokens-{run_id[:8]}", appended_rows(clean, plan)).collect()
    files = [r["path"] for r in results if r["path"]]
    counts = {
        "docs": sum(r["rows"] for r in results),
        "tokens": sum(r["tokens"] for r in results),
        "bytes_in": sum(r["bytes_in"] for r in results),
    }
    extra = {keys.key(k): str(v) for k, v in info.items()}
    extra[keys.BOS] = str(cfg.tokenize.bos).lower()
    extra[keys.EOS] = str(cfg.tokenize.eos).lower()
    extra.update({STAGE_PARAMS: params, **plan.summary()})
    summary = lake.snapshot_summary(cfg, "tokenize", run_id, extra)
    failpoint("tokenize.before_commit")
    snapshot = lake.commit_files(table, files, summary, overwrite=plan.mode == "full")
    if plan.mode == "full":
        with table.transaction() as tx:
            tx.set_properties({k: str(v) for k, v in info.items()})
    log.info("tokenize (%s): %d docs, %d tokens (%s, tokenizer %s)", plan.mode, counts["docs"], counts["tokens"],
             info["token_dtype"], spec.sha256[:12])
    return StageReport(stage="tokenize", counts=counts, snapshots={"tokens": snapshot}, outputs=outputs,
                       seconds=time.monotonic() - start)


def _with_order_hash(seed: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            h = order_hash(batch.column("doc_id").cast(pa.large_string()), seed)
            yield pa.RecordBatch.from_arrays(
                [batch.column("doc_id"), batch.column("text"), pa.array(h, pa.int64())], ["doc_id", "text", "h"]
            )

    return run


def training_settings(cfg: Config) -> dict[str, Any]:
    """What a trained tokenizer depends on besides its sample: `tokenize.train` (less `retrain`) and the EOD token."""
    return {"train": cfg.tokenize.train.model_dump(mode="json", exclude={"retrain"}),
            "eod_token": cfg.tokenize.eod_token}


def train_tokenizer(spark: SparkSession, cfg: Config) -> StageReport:
    """Train a byte-level BPE on clean_docs texts and write tokenizer.json to `tokenize.tokenizer`, unless a
    tokenizer trained with the same `tokenize.train` settings is already there (its training record says so):
    then it is kept as is, said in one log line, and the report counts `kept: 1`. Adding data never retrains;
    other settings or `tokenize.train.retrain` (`tokenmill train-tokenizer --retrain`) do.

    Documents are taken in the seeded hash order of their doc_id, at most `tokenize.train.max_docs` of them,
    so the same table and config give the same file. StageInputError when clean_docs is missing or empty.
    """
    start = time.monotonic()
    tc = cfg.tokenize.train
    settings = training_settings(cfg)
    reason = "retrain requested" if tc.retrain else training_reason(cfg.tokenize.tokenizer, settings)
    if reason is None:
        log.info("train-tokenizer: keeping %s, trained with the same tokenize.train settings (--retrain to train "
                 "again)", cfg.tokenize.tokenizer)
        return StageReport(stage="train-tokenizer", counts={"docs": 0, "kept": 1},
                           outputs={"tokenizer": str(Path(cfg.tokenize.tokenizer.removeprefix("file://")))},
                           seconds=time.monotonic() - start, skipped=True)
    log.info("train-tokenizer: training: %s", reason)
    df = _clean_docs(spark, cfg).select("doc_id", "text")
    df = df.mapInArrow(_with_order_hash(tc.seed), "doc_id string, text string, h long").orderBy("h", "doc_id")
    if tc.max_docs is not None:
        df = df.limit(tc.max_docs)
    n_docs = 0

    def texts() -> Iterator[str]:
        nonlocal n_docs
        for row in df.select("text").toLocalIterator():
            n_docs += 1
            yield row["text"] or ""

    tok = train_bpe(texts(), vocab_size=tc.vocab_size, min_frequency=tc.min_frequency,
                    eod_token=cfg.tokenize.eod_token)
    if n_docs == 0:
        raise StageInputError(f"table {cfg.lake.namespace}.clean_docs is empty: nothing to train a tokenizer on")
    path = save_tokenizer(tok, cfg.tokenize.tokenizer)
    write_training_record(path, settings)
    log.info("trained a %d-token byte-level BPE on %d docs -> %s", tok.get_vocab_size(), n_docs, path)
    return StageReport(
        stage="train-tokenizer", counts={"docs": n_docs, "vocab_size": tok.get_vocab_size(), "kept": 0},
        outputs={"tokenizer": str(path)}, seconds=time.monotonic() - start,
    )
