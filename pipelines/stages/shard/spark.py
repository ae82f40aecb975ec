"""Spark glue of the shard stage: tokens -> tar shards + per-shard index + manifest (local or S3) + shards table.

Planning never brings per-document data to the driver (`sharding.write.dataset_plan`): each document's order
key and sample size (`meta`, kept by Spark for the run) are summed per hash-prefix bucket; the driver cuts the
buckets into groups from those totals; each group is packed on an executor over its documents in key order and
returns its shard runs and per-shard counts, which the driver merges. Writing then tags every document with its
shard, shuffles once by shard, sorts by key within the shard and lets each task stream whole shards to their
final place. The bytes depend only on the tokens rows and the config, never on how Spark partitioned them.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import StageInputError, StageOutputError
from pipelines.lake import summary as keys
from pipelines.lake.spark import read_data_files_df, read_table_df
from pipelines.stages.report import StageReport
from pipelines.stages.shard.publish import (
    extend_manifest,
    prefixed,
    publish,
    read_published,
    refresh_alias,
    run_dir,
    run_stamp,
)
from pipelines.stages.snapshots import (
    STAGE_PARAMS,
    InputPlan,
    appended_rows,
    input_snapshot,
    log_plan,
    params_digest,
    plan_input,
)
from pipelines.storage import S3Options
from schemas.shards import TABLE as SHARDS
from sharding.format.manifest import TOKEN_DTYPES, build_manifest, index_name, shard_name
from sharding.format.tar import index_bytes
from sharding.write.dataset_plan import (
    BUCKET_BITS,
    DatasetPlan,
    DuplicateSampleError,
    bucket_of,
    collision_mask,
    encode_group,
    group_buckets,
    json_members,
    merge_plans,
    order_keys,
    plan_dataset,
    sample_sizes,
)
from sharding.write.sinks import open_sink, write_object
from sharding.write.writer import ShardStats, ShardWriter

log = logging.getLogger(__name__)

# an increment of at most this many tokens rows is planned on the driver (about 60 bytes each there)
DRIVER_PLAN_ROWS = 200_000
# a run writing at most this many shard bytes writes them in one task, the rows read without a shuffle
ONE_TASK_WRITE_BYTES = 64 << 20
META_SCHEMA = "bucket int, h long, doc_id string, ch long, nbytes long"
GROUPED_SCHEMA = "group int, h long, doc_id string, ch long, nbytes long"
GROUP_PLAN_SCHEMA = (
    "group int, run_keys binary, run_shards binary, shard_samples binary, shard_bytes binary, oversized binary, "
    "coll_h binary, coll_ch binary, coll_shard binary, coll_doc_ids array<string>, duplicate string"
)
TAGGED_SCHEMA = "shard int, h long, doc_id string, ch long, tokens binary, n_tokens int, source string"
WRITTEN_SCHEMA = "shard int, bytes long, n_samples long, n_tokens long, sha256 string, index_sha256 string"
CODE_VERSION = "2"  # bump when the shard bytes written for the same tokens and settings change
INFO_KEYS = ("token_dtype", "eod_id", "vocab_size", "tokenizer_sha256")


def _str(col: pa.Array) -> pa.Array:
    return pc.fill_null(col.cast(pa.large_string()), "")


def _meta(seed: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            doc_ids, tokens, sources = _str(b.column("doc_id")), b.column("tokens"), _str(b.column("source"))
            h, ch = order_keys(doc_ids, tokens, sources, seed)
            sizes = sample_sizes(doc_ids, tokens, b.column("n_tokens"), sources)
            yield pa.RecordBatch.from_arrays(
                [pa.array(bucket_of(h)), pa.array(h), doc_ids.cast(pa.string()), pa.array(ch), pa.array(sizes)],
                ["bucket", "h", "doc_id", "ch", "nbytes"],
            )

    return run


def _with_group(groups: np.ndarray) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            group = groups[b.column("bucket").to_numpy()]
            yield pa.RecordBatch.from_arrays(
                [pa.array(group), *(b.column(c) for c in ("h", "doc_id", "ch", "nbytes"))],
                ["group", "h", "doc_id", "ch", "nbytes"],
            )

    return run


def _group_tables(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[int, pa.Table]]:
    """(group, its rows) of a partition sorted by group: one group held at a time."""
    group, pieces = -1, list[pa.RecordBatch]()
    for b in batches:
        if not b.num_rows:
            continue
        g = b.column("group").to_numpy()
        cuts = np.flatnonzero(g[1:] != g[:-1]) + 1
        for lo, hi in zip(np.r_[0, cuts].tolist(), np.r_[cuts, g.size].tolist(), strict=True):
            if int(g[lo]) != group and pieces:
                yield group, pa.Table.from_batches(pieces)
                pieces = []
            group = int(g[lo])
            pieces.append(b.slice(lo, hi - lo))
    if pieces:
        yield group, pa.Table.from_batches(pieces)


_GROUP_PLAN_ARROW = pa.schema(
    [("group", pa.int32())]
    + [(k, pa.binary()) for k in ("run_keys", "run_shards", "shard_samples", "shard_bytes", "oversized",
                                  "coll_h", "coll_ch", "coll_shard")]
    + [("coll_doc_ids", pa.list_(pa.string())), ("duplicate", pa.string())]
)


def _plan_groups(target_bytes: int, fill: float, lookahead: int) -> Callable[
    [Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]
]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Pack each bucket group of a partition sorted by (group, h, doc_id, ch) into its shards."""
        for group, t in _group_tables(batches):
            h, ch, nbytes = (t.column(c).to_numpy() for c in ("h", "ch", "nbytes"))
            coll = np.flatnonzero(collision_mask(h))
            coll_ids = t.column("doc_id").take(pa.array(coll)).to_pylist()
            try:
                plan = plan_dataset(h, nbytes, (coll, coll_ids, ch[coll]), target_bytes=target_bytes,
                                    fill=fill, lookahead=lookahead)
                row = encode_group(group, plan)
            except DuplicateSampleError as exc:  # raised again on the driver, as a StageInputError
                row = encode_group(group, None, duplicate=str(exc))
            yield pa.RecordBatch.from_pylist([row], schema=_GROUP_PLAN_ARROW)

    return run


def plan_shards_on_driver(meta: DataFrame, cfg: Config) -> tuple[DatasetPlan, int]:
    """`plan_shards` for a few documents (an increment): their meta rows are brought to the driver in one job
    and the same bucket totals, bucket groups and group packing (`_plan_groups`, over the rows sorted as
    the executors sort them) run there; the plan is the one `plan_shards` makes."""
    s = cfg.shard
    rows = meta.toArrow()
    if rows.num_rows == 0:
        return merge_plans([], s.target_bytes), 0
    totals = np.zeros(1 << BUCKET_BITS, dtype=np.int64)
    np.add.at(totals, rows.column("bucket").to_numpy(), rows.column("nbytes").to_numpy())
    groups = group_buckets(totals, s.group_shards * s.target_bytes)
    n_groups = int(groups.max()) + 1 if totals.any() else 0
    grouped = pa.Table.from_batches(_with_group(groups)(iter(rows.to_batches())))
    grouped = grouped.sort_by([(c, "ascending") for c in ("group", "h", "doc_id", "ch")])
    plans = pa.Table.from_batches(_plan_groups(s.target_bytes, s.fill, s.lookahead)(iter(grouped.to_batches())),
                                  schema=_GROUP_PLAN_ARROW)
    return merge_plans(plans.to_pylist(), s.target_bytes), n_groups


def plan_shards(meta: DataFrame, cfg: Config, partitions: int) -> tuple[DatasetPlan, int]:
    """Plan the run without per-document data on the driver: bucket totals, bucket groups, each group packed
    by an executor, the groups' plans merged. Returns the plan and the number of bucket groups."""
    s = cfg.shard
    meta = meta.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        totals = np.zeros(1 << BUCKET_BITS, dtype=np.int64)
        sums = meta.groupBy("bucket").agg(F.sum("nbytes").alias("nbytes")).toArrow()  # <= 65,536 rows
        totals[sums.column("bucket").to_numpy()] = sums.column("nbytes").to_numpy()
        groups = group_buckets(totals, s.group_shards * s.target_bytes)
        n_groups = int(groups.max()) + 1 if totals.any() else 0
        rows = (
            meta.mapInArrow(_with_group(groups), GROUPED_SCHEMA)
            .repartition(max(1, min(n_groups, partitions)), "group")
            .sortWithinPartitions("group", "h", "doc_id", "ch")
            .mapInArrow(_plan_groups(s.target_bytes, s.fill, s.lookahead), GROUP_PLAN_SCHEMA)
            .collect()
        )
    finally:
        meta.unpersist()
    return merge_plans([r.asDict() for r in rows], s.target_bytes), n_groups


def _tag(seed: int, plan: DatasetPlan) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            doc_ids, tokens, sources = _str(b.column("doc_id")), b.column("tokens"), _str(b.column("source"))
            h, ch = order_keys(doc_ids, tokens, sources, seed)
            shard = plan.shard_of(h, doc_ids.to_pylist() if plan.collided else [], ch)
            yield pa.RecordBatch.from_arrays(
                [pa.array(shard), pa.array(h), doc_ids.cast(pa.string()), pa.array(ch),
                 tokens.cast(pa.binary()), b.column("n_tokens").cast(pa.int32()), sources.cast(pa.string())],
                ["shard", "h", "doc_id", "ch", "tokens", "n_tokens", "source"],
            )

    return run


def _write_shards(
    out: str, s3: S3Options, plan: DatasetPlan, itemsize: int, first_key: int = 0
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def finish(writer: ShardWriter) -> dict[str, Any]:
        stats = writer.finish()
        s = stats.shard_index
        if stats.n_samples != plan.shard_samples[s] or stats.bytes != plan.shard_bytes[s]:
            raise StageOutputError(
                f"shard {s}: wrote {stats.n_samples} samples / {stats.bytes} bytes, planned "
                f"{plan.shard_samples[s]} / {plan.shard_bytes[s]} (tokens table changed during the run?)"
            )
        idx = index_bytes(stats.index)
        write_object(out, index_name(s), idx, s3=s3)
        return {"shard": s, "bytes": stats.bytes, "n_samples": stats.n_samples, "n_tokens": stats.n_tokens,
                "sha256": stats.sha256, "index_sha256": hashlib.sha256(idx).hexdigest()}

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        writer: ShardWriter | None = None
        done: list[dict[str, Any]] = []
        try:
            for b in batches:
                shard = b.column("shard").to_numpy()
                n_tokens = b.column("n_tokens").to_numpy(zero_copy_only=False)
                tokens = b.column("tokens").to_pylist()
                metas = json_members(_str(b.column("doc_id")), b.column("n_tokens"), _str(b.column("source")))
                for i, s in enumerate(shard.tolist()):
                    if writer is None or writer.stats.shard_index != s:
                        if writer is not None:
                            done.append(finish(writer))
                        sink = open_sink(out, shard_name(s), s3=s3)
                        writer = ShardWriter(sink, s, first_key + int(plan.first_index[s]))
                    data = tokens[i] or b""
                    if len(data) != n_tokens[i] * itemsize:
                        raise ValueError(f"doc_id {metas[i][:80]!r}: {len(data)} token bytes but n_tokens={n_tokens[i]}")
                    writer.add(data, metas[i], int(n_tokens[i]))
            if writer is not None:
                done.append(finish(writer))
                writer = None
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if done:
            yield pa.RecordBatch.from_pylist(done, schema=pa.schema([
                ("shard", pa.int32()), ("bytes", pa.int64()), ("n_samples", pa.int64()), ("n_tokens", pa.int64()),
                ("sha256", pa.string()), ("index_sha256", pa.string()),
            ]))

    return run


def tokens_info(table: Any) -> dict[str, str]:
    """Tokenizer facts of the tokens table: its current snapshot's summary, else its table properties."""
    summary = lake.last_summary(table)
    info = {k: summary.get(keys.key(k)) or table.properties.get(k) for k in INFO_KEYS}
    missing = [k for k, v in info.items() if v is None]
    if missing:
        raise StageInputError(f"tokens table records no {', '.join(missing)}; run tokenize first")
    return {k: str(v) for k, v in info.items()}


def stage_params(cfg: Config, info: dict[str, str]) -> str:
    """What fixes the shards written for the same tokens: shard layout settings, the folder, the tokenizer."""
    layout = cfg.shard.model_dump(mode="json", include={"target_bytes", "seed", "fill", "lookahead", "group_shards"})
    return params_digest("shard", CODE_VERSION, layout, cfg.shards_uri().rstrip("/"), info)


def run_shard(spark: SparkSession, cfg: Config) -> StageReport:
    """tokens -> new shards under a run-scoped prefix of `cfg.shards_uri()`, a new manifest, and the shards
    table committed to point at it (see `pipelines.stages.shard.publish`).

    Incremental (see `pipelines.stages.snapshots`): when tokens only grew since the snapshot the last run consumed,
    only the new documents are sharded and the manifest lists the previous shards plus the new ones; a
    rewritten tokens table, another tokenizer or other shard settings write every shard anew; nothing new
    commits nothing. No existing object is overwritten or deleted (`tokenmill gc` removes unreferenced ones).

    Counts: shards, samples, tokens, bytes (the published manifest's totals), shards_written, samples_written,
    oversized_docs, bucket_groups and short_shards (this run: the shards under `shard.fill` of the target that
    hold no oversized document, the tails the bucket groups end with). Outputs: {"manifest": uri}. StageInputError when tokens is missing or records
    no tokenizer.
    """
    start = time.monotonic()
    run_id = uuid.uuid4().hex
    s = cfg.shard
    out = cfg.shards_uri().rstrip("/")
    catalog = lake.open_catalog(cfg.lake)
    tokens = lake.load_table(catalog, cfg.lake.namespace, "tokens")
    if tokens is None:
        raise StageInputError(f"table {cfg.lake.namespace}.tokens does not exist; run tokenize first")
    info = tokens_info(tokens)
    params = stage_params(cfg, info)
    last = lake.last_summary(lake.ensure_table(catalog, cfg.lake.namespace, SHARDS))
    plan_in = plan_input(tokens, last, params, snapshot_id=input_snapshot(cfg, tokens))
    previous = None
    if plan_in.mode in ("skip", "incremental"):
        previous = read_published(last.get(keys.MANIFEST_URI, ""), last.get(keys.MANIFEST_SHA256), s.s3_options())
        if previous is None:
            plan_in = InputPlan("full", "the previous manifest is missing or changed", plan_in.snapshot_id,
                                lake.data_files(tokens, plan_in.snapshot_id) if plan_in.snapshot_id else [])
    log_plan("shard", plan_in)
    if previous is not None and (plan_in.mode == "skip" or not plan_in.files):
        uri = last[keys.MANIFEST_URI]
        refresh_alias(out, uri, s.s3_options())
        return StageReport(
            stage="shard", counts={**_totals(previous), "shards_written": 0, "samples_written": 0,
                                   "oversized_docs": 0, "bucket_groups": 0, "short_shards": 0},
            snapshots={"shards": _snapshot_id(catalog, cfg)}, outputs={"manifest": uri},
            seconds=time.monotonic() - start, skipped=True)
    itemsize = TOKEN_DTYPES[info["token_dtype"]].itemsize
    cols = ("doc_id", "tokens", "n_tokens", "source")
    df = (read_data_files_df(spark, tokens, plan_in.files) if plan_in.files
          else read_table_df(spark, tokens, plan_in.snapshot_id)).select(*cols)
    cores = spark.sparkContext.defaultParallelism
    meta = df.mapInArrow(_meta(s.seed), META_SCHEMA)
    new_rows = appended_rows(tokens, plan_in)
    try:
        plan, n_groups = (plan_shards_on_driver(meta, cfg) if new_rows is not None and new_rows <= DRIVER_PLAN_ROWS
                          else plan_shards(meta, cfg, max(cores, 1)))
    except DuplicateSampleError as exc:
        raise StageInputError(f"tokens: {exc}") from None
    stamp = run_stamp(run_id)
    run_out = f"{out}/{run_dir(stamp)}"
    first_key = int(previous["n_samples"]) if previous is not None else 0
    written: list[dict[str, Any]] = []
    if plan.n_shards:
        tasks = min(plan.n_shards, s.write_tasks or cores)
        tagged = df.mapInArrow(_tag(s.seed, plan), TAGGED_SCHEMA)
        # a few bytes are written by one task, without a shuffle (one job): a shuffle costs more than it saves
        one_task = tasks == 1 or int(plan.shard_bytes.sum()) <= ONE_TASK_WRITE_BYTES
        written = [
            r.asDict() for r in (
                (tagged.coalesce(1) if one_task else tagged.repartition(tasks, "shard"))
                .sortWithinPartitions("shard", "h", "doc_id", "ch")
                .mapInArrow(_write_shards(run_out, s.s3_options(), plan, itemsize, first_key), WRITTEN_SCHEMA)
                .collect()
            )
        ]
    stats = [
        ShardStats(shard_index=r["shard"], bytes=r["bytes"], n_samples=r["n_samples"], n_tokens=r["n_tokens"],
                   sha256=r["sha256"], index_sha256=r["index_sha256"])
        for r in written
    ]
    new = build_manifest(
        stats, token_dtype=info["token_dtype"], eod_id=int(info["eod_id"]), vocab_size=int(info["vocab_size"]),
        tokenizer_sha256=info["tokenizer_sha256"], target_bytes=s.target_bytes, params_hash=cfg.params_hash(),
    )
    if new["n_shards"] != plan.n_shards:
        raise StageOutputError(f"planned {plan.n_shards} shards but {new['n_shards']} were written")
    manifest = extend_manifest(previous if plan_in.mode == "incremental" else None,
                               prefixed(new, run_dir(stamp)))
    extra = {STAGE_PARAMS: params, **plan_in.summary()}
    manifest_uri, snapshot = publish(cfg, catalog, run_id, out, stamp, manifest, extra)
    if plan.oversized.size:
        log.warning("%d documents are larger than a shard and got shards of their own: %s",
                    plan.oversized.size, [shard_name(int(i)) for i in plan.oversized[:10]])
    log.info("shard (%s): %d new shards (%d bucket groups, %d short tails), %d new samples; manifest lists %d "
             "shards, %d samples -> %s", plan_in.mode, new["n_shards"], n_groups, plan.short_shards(s.fill),
             new["n_samples"], manifest["n_shards"], manifest["n_samples"], manifest_uri)
    return StageReport(
        stage="shard",
        counts={**_totals(manifest), "shards_written": new["n_shards"], "samples_written": new["n_samples"],
                "oversized_docs": int(plan.oversized.size), "bucket_groups": n_groups,
                "short_shards": plan.short_shards(s.fill)},
        snapshots={"shards": snapshot}, outputs={"manifest": manifest_uri}, seconds=time.monotonic() - start,
    )


def _totals(manifest: dict[str, Any]) -> dict[str, int]:
    return {"shards": int(manifest["n_shards"]), "samples": int(manifest["n_samples"]),
            "tokens": int(manifest["n_tokens"]), "bytes": int(manifest["total_bytes"])}


def _snapshot_id(catalog: Any, cfg: Config) -> int | None:
    table = lake.load_table(catalog, cfg.lake.namespace, "shards")
    snap = table.current_snapshot() if table is not None else None
    return snap.snapshot_id if snap is not None else None
