"""`tokenmill audit`: count conservation across the tables and every shard's checksum against the manifest.

input records = raw_docs + quarantine (records read are in each ingest commit's snapshot summary);
raw_docs = kept + filtered + duplicate (doc_decisions has exactly one row per raw doc_id);
clean_docs = kept; tokens = clean_docs; manifest samples/tokens = tokens table; each shard's sha256 matches.

Table totals come from Iceberg metadata; the per-document checks (doc_id sets, duplicate source identities,
decision counts, token sums) are Spark aggregates (`pipelines.ops.audit.spark`), so the driver's memory does not
grow with the corpus. The audit uses the running SparkSession, or starts one from `spark` in the config.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyiceberg.table import Table

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import AuditError, StorageError
from pipelines.lake import summary as keys
from pipelines.storage import S3Options, filesystem
from sharding.errors import ManifestError
from sharding.format import ShardManifest, read_manifest

if TYPE_CHECKING:
    from pipelines.lake.spark import SparkSession

log = logging.getLogger(__name__)

CHUNK = 8 * 1024 * 1024


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class AuditResult:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, bool(ok), detail))

    def raise_if_failed(self) -> None:
        failed = [c for c in self.checks if not c.ok]
        if failed:
            raise AuditError(f"audit failed: {len(failed)} check(s): " + "; ".join(f"{c.name}: {c.detail}" for c in failed))


def total_records(table: Table | None) -> int:
    """Rows in the table's current snapshot, from Iceberg metadata (no data scan)."""
    snapshot = None if table is None else table.current_snapshot()
    if table is None or snapshot is None:
        return 0
    summary = snapshot.summary
    value = summary.additional_properties.get("total-records") if summary else None
    if value is not None:
        return int(value)
    # No total in the summary (a snapshot written by another engine): the data files' record counts from the
    # manifests, still no data scan; tokenmill never writes delete files, so these counts are the rows.
    tasks = list(table.scan().plan_files())
    if any(task.delete_files for task in tasks):
        raise AuditError(f"{table.name()}: snapshot {snapshot.snapshot_id} has delete files and no total-records;"
                         " count it with a query engine")
    return sum(task.file.record_count for task in tasks)


def ingested_records(raw_docs: Table) -> int | None:
    """Sum of `tokenmill.records_read` over the ingest commits in the current snapshot's ancestry."""
    total, seen = 0, False
    snap = raw_docs.current_snapshot()
    while snap is not None:
        props = snap.summary.additional_properties if snap.summary else {}
        if props.get(keys.STAGE) == "ingest" and keys.RECORDS_READ in props:
            total += int(props[keys.RECORDS_READ])
            seen = True
        snap = raw_docs.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id else None
    return total if seen else None


def audit_shards(result: AuditResult, manifest_uri: str, s3: S3Options | None, tokens: Table | None,
                 spark: SparkSession) -> ShardManifest | None:
    """Check every shard's sha256 against the manifest (read and validated through sharding.format) and the
    manifest's counts against the tokens table; returns the manifest, None when it cannot be read."""
    from pipelines.ops.audit import spark as spark_audit

    try:
        manifest = read_manifest(manifest_uri, s3)
    except (ManifestError, StorageError) as exc:
        result.add("manifest", False, str(exc))
        return None
    fs, path = filesystem(manifest.uri, s3)
    folder = path.rsplit("/", 1)[0]
    bad = []
    for name, digest in zip(manifest.paths, manifest.sha256, strict=True):
        h = hashlib.sha256()
        try:
            with fs.open_input_stream(f"{folder}/{name}") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except (FileNotFoundError, OSError):
            bad.append(f"{name} missing")
            continue
        if h.hexdigest() != digest:
            bad.append(f"{name} sha256 mismatch")
    result.add("shard checksums", not bad, "; ".join(bad) if bad else f"{manifest.n_shards} shards verified")
    if tokens is not None:
        n_tokens_rows = total_records(tokens)
        samples = int(manifest.n_samples.sum())
        result.add("shards = tokens", samples == n_tokens_rows,
                   f"manifest samples {samples}, tokens rows {n_tokens_rows}")
        if tokens.current_snapshot() is not None:
            tok_sum = spark_audit.column_sum(spark, tokens, "n_tokens")
            man_sum = int(manifest.n_tokens.sum())
            result.add("shard tokens = table tokens", tok_sum == man_sum, f"manifest {man_sum}, table {tok_sum}")
    return manifest


def audit(cfg: Config, spark: SparkSession | None = None) -> AuditResult:
    """Run every check and return them all (the caller decides whether a failure is fatal). `spark`: default
    the running session, else one built from `cfg.spark`."""
    from pipelines.lake.spark import build_session, read_table_df
    from pipelines.ops.audit import spark as spark_audit

    spark = spark or build_session(cfg.spark)
    result = AuditResult()
    catalog = lake.open_catalog(cfg.lake)
    ns = cfg.lake.namespace
    tables = {name: lake.load_table(catalog, ns, name) for name in
              ("raw_docs", "quarantine", "clean_docs", "doc_decisions", "tokens", "shards")}
    raw, quarantine = tables["raw_docs"], tables["quarantine"]
    if raw is None:
        result.add("raw_docs", False, "table missing: run `tokenmill ingest` first")
        return result
    n_raw, n_quarantine = total_records(raw), total_records(quarantine)
    read = ingested_records(raw)
    if read is None:
        result.add("input = raw_docs + quarantine", False, "no ingest commit records how many records it read")
    else:
        result.add("input = raw_docs + quarantine", read == n_raw + n_quarantine,
                   f"{read} read = {n_raw} raw + {n_quarantine} quarantined")
    extra, examples = spark_audit.duplicate_identities(spark, raw, quarantine)
    result.add("each input record once", extra == 0,
               "every source record (object + line, topic/partition/offset) ingested once per version" if extra == 0
               else f"{extra} record(s) ingested more than once: " + ", ".join(examples))
    decisions = tables["doc_decisions"]
    if decisions is None or decisions.current_snapshot() is None:
        result.add("doc_decisions", False, "table missing or empty: run `tokenmill curate`")
        return result
    dec = read_table_df(spark, decisions, columns=["doc_id", "decision"])
    counts = {"kept": 0, "filtered": 0, "duplicate": 0, **spark_audit.decision_counts(dec)}
    unknown = set(counts) - {"kept", "filtered", "duplicate"}
    result.add("raw_docs = kept + filtered + duplicate",
               not unknown and sum(counts.values()) == n_raw,
               f"{n_raw} raw = {counts['kept']} kept + {counts['filtered']} filtered + {counts['duplicate']} duplicate"
               + (f"; unknown decisions {sorted(unknown)}" if unknown else ""))
    # a doc_id repeated in raw_docs has one decision per raw row (the repeats are duplicates, reason doc_id)
    ok, detail = spark_audit.same_ids(spark_audit.doc_ids(spark, raw), dec.select("doc_id"))
    result.add("one decision per raw doc", ok, detail)
    clean = tables["clean_docs"]
    kept_ids = dec.filter(dec["decision"] == "kept").select("doc_id")
    n_kept, unique = spark_audit.kept_unique(kept_ids)
    result.add("kept doc_ids are unique", unique, f"{n_kept} kept" + ("" if unique else "; repeated doc_ids"))
    if clean is not None:
        ok, detail = spark_audit.same_ids(spark_audit.doc_ids(spark, clean), kept_ids)
        result.add("clean_docs = kept", ok, detail)
    tokens = tables["tokens"]
    if tokens is not None and tokens.current_snapshot() is not None and clean is not None:
        ok, detail = spark_audit.same_ids(spark_audit.doc_ids(spark, tokens), spark_audit.doc_ids(spark, clean))
        result.add("tokens = clean_docs", ok, detail)
    shards = tables["shards"]
    if shards is not None and shards.current_snapshot() is not None:
        from pipelines.ops.versions import manifest_location

        manifest_uri = manifest_location(cfg, shards)
        manifest = audit_shards(result, manifest_uri, cfg.shard.s3_options(), tokens, spark)
        result.add("shards table = manifest",
                   manifest is not None and total_records(shards) == manifest.n_shards,
                   f"{total_records(shards)} rows")
    return result
