"""`tokenmill audit`: count conservation across the tables and every shard's checksum against the manifest.

input records = raw_docs + quarantine (records read are in each ingest commit's snapshot summary);
raw_docs = kept + filtered + duplicate (doc_decisions has exactly one row per raw doc_id);
clean_docs = kept; tokens = clean_docs; manifest samples/tokens = tokens table; each shard's sha256 matches.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import AuditError, StorageError
from pipelines.sources import identity as source_identity
from pipelines.storage import S3Options, filesystem
from sharding.errors import ManifestError
from sharding.format import ShardManifest, read_manifest

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
    return int(value) if value is not None else lake.read_table(table, ("doc_id",)).num_rows


def ingested_records(raw_docs: Table) -> int | None:
    """Sum of `tokenmill.records_read` over the ingest commits in the current snapshot's ancestry."""
    total, seen = 0, False
    snap = raw_docs.current_snapshot()
    while snap is not None:
        props = snap.summary.additional_properties if snap.summary else {}
        if props.get("tokenmill.stage") == "ingest" and "tokenmill.records_read" in props:
            total += int(props["tokenmill.records_read"])
            seen = True
        snap = raw_docs.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id else None
    return total if seen else None


def _ids(table: Table, column: str = "doc_id", row_filter: str | None = None) -> pa.Array:
    if table.current_snapshot() is None:
        return pa.array([], pa.string())
    scan = table.scan(selected_fields=(column,), row_filter=row_filter) if row_filter else table.scan(
        selected_fields=(column,))
    return scan.to_arrow().column(column).combine_chunks()


def _same_ids(a: pa.Array, b: pa.Array) -> tuple[bool, str]:
    if len(a) != len(b):
        return False, f"{len(a)} vs {len(b)} rows"
    sa, sb = pc.sort_indices(a), pc.sort_indices(b)
    equal = pc.all(pc.equal(pc.take(a, sa), pc.take(b, sb))).as_py()
    return bool(equal) if equal is not None else len(a) == 0, "doc_ids differ" if not equal else "same doc_ids"


def audit_shards(result: AuditResult, manifest_uri: str, s3: S3Options | None, tokens: Table | None
                 ) -> ShardManifest | None:
    """Check every shard's sha256 against the manifest (read and validated through sharding.format) and the
    manifest's counts against the tokens table; returns the manifest, None when it cannot be read."""
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
            tok_sum = pc.sum(tokens.scan(selected_fields=("n_tokens",)).to_arrow().column("n_tokens")).as_py() or 0
            man_sum = int(manifest.n_tokens.sum())
            result.add("shard tokens = table tokens", tok_sum == man_sum, f"manifest {man_sum}, table {tok_sum}")
    return manifest


def audit(cfg: Config) -> AuditResult:
    """Run every check and return them all (the caller decides whether a failure is fatal)."""
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
    result.add("each input record once", *source_identity.check(raw, quarantine))
    decisions = tables["doc_decisions"]
    if decisions is None or decisions.current_snapshot() is None:
        result.add("doc_decisions", False, "table missing or empty: run `tokenmill curate`")
        return result
    dec = decisions.scan(selected_fields=("doc_id", "decision")).to_arrow()
    counts = {k: 0 for k in ("kept", "filtered", "duplicate")}
    for row in pc.value_counts(dec.column("decision")).to_pylist():
        counts[row["values"]] = row["counts"]
    unknown = set(counts) - {"kept", "filtered", "duplicate"}
    result.add("raw_docs = kept + filtered + duplicate",
               not unknown and sum(counts.values()) == n_raw,
               f"{n_raw} raw = {counts['kept']} kept + {counts['filtered']} filtered + {counts['duplicate']} duplicate"
               + (f"; unknown decisions {sorted(unknown)}" if unknown else ""))
    # a doc_id repeated in raw_docs has one decision per raw row (the repeats are duplicates, reason doc_id)
    ok, detail = _same_ids(_ids(raw), dec.column("doc_id").combine_chunks())
    result.add("one decision per raw doc", ok, detail)
    clean = tables["clean_docs"]
    kept_ids = pc.filter(dec.column("doc_id"), pc.equal(dec.column("decision"), "kept")).combine_chunks()
    unique = pc.count_distinct(kept_ids).as_py() == len(kept_ids)
    result.add("kept doc_ids are unique", unique, f"{len(kept_ids)} kept" + ("" if unique else "; repeated doc_ids"))
    if clean is not None:
        ok, detail = _same_ids(_ids(clean), kept_ids)
        result.add("clean_docs = kept", ok, detail)
    tokens = tables["tokens"]
    if tokens is not None and tokens.current_snapshot() is not None and clean is not None:
        ok, detail = _same_ids(_ids(tokens), _ids(clean))
        result.add("tokens = clean_docs", ok, detail)
    shards = tables["shards"]
    if shards is not None and shards.current_snapshot() is not None:
        from pipelines.versions import manifest_location

        manifest_uri = manifest_location(cfg, shards)
        manifest = audit_shards(result, manifest_uri, cfg.shard.s3_options(), tokens)
        result.add("shards table = manifest",
                   manifest is not None and total_records(shards) == manifest.n_shards,
                   f"{total_records(shards)} rows")
    return result
