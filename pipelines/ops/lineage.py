"""`tokenmill lineage`: the way back from a document (or a shard member) to its source record.

For one doc_id at one version it gathers: the source coordinates (Kafka topic/partition/offset, or object URI
and record number) from raw_docs, the ingest snapshot that added it, the curate decision (kept, filtered with a
reason, or duplicate of which kept document), its quality signals, its token count, and the shard and member
key it sits in, with the byte offsets of its members in the tar. Every table is read at the version's
snapshot, and each step names the snapshot it came from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table
from tqdm import tqdm

from pipelines import lake
from pipelines.config import Config
from pipelines.errors import LineageError
from pipelines.lake import summary as keys
from pipelines.ops.versions import VersionInfo, resolve_version, shard_manifest
from pipelines.storage import S3Options, filesystem
from schemas.signals import SIGNAL_FIELDS
from sharding.format import ShardManifest, iter_members, read_index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardPosition:
    """Where a sample sits: shard file, member key (= global sample index) and member data offsets in bytes."""

    shard: str
    shard_number: int
    key: str
    tokens_offset: int
    n_tokens: int
    json_offset: int
    json_nbytes: int
    manifest_uri: str
    shard_sha256: str


@dataclass
class Lineage:
    """Everything known about one document at one version; `snapshots` maps table -> snapshot id read."""

    doc_id: str
    version: str
    source: dict[str, Any]
    snapshots: dict[str, int | None]
    ingest_snapshot_id: int | None = None
    ingest_run_id: str | None = None
    decision: str | None = None
    reason: str | None = None
    cluster_id: str | None = None
    kept_doc_id: str | None = None
    similarity: float | None = None  # a duplicate's Jaccard to kept_doc_id; verified_by says how it was found
    verified_by: str | None = None
    cluster_size: int | None = None  # a kept document: raw documents it stands for (itself included)
    signals: dict[str, Any] = field(default_factory=dict)
    in_clean_docs: bool = False
    n_tokens: int | None = None
    position: ShardPosition | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The human-readable trace, one step per line, source first."""
        s = self.source
        if s.get("source_type") == "kafka":
            where = f"kafka topic {s['source_uri']} partition {s['source_partition']} offset {s['source_offset']}"
        else:
            where = f"{s.get('source_type')} {s['source_uri']} record {s['source_offset']}"
        out = [f"document {self.doc_id} at version {self.version}",
               f"  source    {where}",
               f"  ingest    raw_docs snapshot {self.ingest_snapshot_id or self.snapshots.get('raw_docs')}"
               + (f" (run {self.ingest_run_id})" if self.ingest_run_id else "")]
        snap = self.snapshots.get("doc_decisions")
        if self.decision is None:
            out.append("  curate    no decision recorded (curate has not run on this document)")
        elif self.decision == "duplicate":
            evidence = (f", similarity {self.similarity:.3f} ({self.verified_by})"
                        if self.similarity is not None else "")
            out.append(f"  curate    duplicate ({self.reason}) of {self.kept_doc_id}, cluster {self.cluster_id}"
                       f"{evidence}; doc_decisions snapshot {snap}")
        elif self.decision == "filtered":
            out.append(f"  curate    filtered ({self.reason}); doc_decisions snapshot {snap}")
        else:
            size = f", cluster of {self.cluster_size}" if self.cluster_size and self.cluster_size > 1 else ""
            out.append(f"  curate    kept{size}; clean_docs snapshot {self.snapshots.get('clean_docs')}"
                       + ("" if self.in_clean_docs else " (but missing from clean_docs!)"))
        if self.signals:
            out.append("  signals   " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.signals.items()))
        if self.n_tokens is not None:
            out.append(f"  tokenize  {self.n_tokens} tokens; tokens snapshot {self.snapshots.get('tokens')}")
        p = self.position
        if p is not None:
            out.append(f"  shard     {p.shard} member {p.key}.tokens (byte {p.tokens_offset}, {p.n_tokens} tokens)"
                       f" and {p.key}.json (byte {p.json_offset}); shards snapshot {self.snapshots.get('shards')}")
            out.append(f"  manifest  {p.manifest_uri}")
        elif self.decision == "kept":
            out.append("  shard     not in the version's shards")
        return out


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _rows(table: Table | None, snapshot_id: int | None, column: str, value: str) -> list[dict[str, Any]]:
    if table is None or snapshot_id is None:
        return []
    # pyiceberg types its expressions as pydantic models, hiding their positional constructors from mypy
    row_filter = EqualTo(column, value)  # type: ignore[call-arg, arg-type]
    return table.scan(row_filter=row_filter, snapshot_id=snapshot_id).to_arrow().to_pylist()


def _ingest_snapshot(table: Table, snapshot_id: int, run_id: str | None) -> int | None:
    """The ingest snapshot in the ancestry of `snapshot_id` whose run added the document (by run_id)."""
    snap = table.snapshot_by_id(snapshot_id)
    while snap is not None and run_id:
        summary = snap.summary
        props = summary.additional_properties if summary else {}
        if summary and props.get(keys.RUN_ID) == run_id and summary.operation.value == "append":
            return snap.snapshot_id
        snap = table.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id else None
    return None


def locate_in_shards(manifest: ShardManifest, manifest_uri: str, doc_id: str,
                     s3: S3Options | None = None) -> ShardPosition | None:
    """Find the sample whose `<key>.json` names `doc_id`: reads each shard's index and only its JSON members.

    Falls back to reading the tar member by member (sharding.format.iter_members) when a shard's index is
    missing or unreadable. Returns None when no shard has it. `manifest_uri` is what the position reports.
    """
    fs, mpath = filesystem(manifest.uri, s3)
    folder = mpath.rsplit("/", 1)[0]
    needle = json.dumps(doc_id, ensure_ascii=False).encode("utf-8")  # as sharding.format.sample_json writes it
    first_key = 0
    shards = list(zip(manifest.paths, manifest.index_paths, manifest.sha256, strict=True))
    for number, (name, index_name, digest) in enumerate(
        tqdm(shards, desc="searching shards", unit="shard", disable=None if len(shards) >= 8 else True)
    ):
        shard_path = f"{folder}/{name}"
        try:
            with fs.open_input_stream(f"{folder}/{index_name}") as f:
                index = read_index(f.read())
        except (FileNotFoundError, OSError, ValueError):
            log.debug("no readable index for %s; reading the tar", shard_path)
            pos = _scan_tar(fs, shard_path, doc_id, needle)
            if pos is not None:
                return ShardPosition(name, number, *pos, manifest_uri, digest)
            first_key += int(manifest.n_samples[number])
            continue
        with fs.open_input_file(shard_path) as f:
            for i, row in enumerate(index):
                blob = f.read_at(int(row["json_nbytes"]), int(row["json_offset"]))
                if needle in blob and json.loads(blob).get("doc_id") == doc_id:
                    return ShardPosition(name, number, f"{first_key + i:012d}", int(row["tokens_offset"]),
                                         int(row["n_tokens"]), int(row["json_offset"]), int(row["json_nbytes"]),
                                         manifest_uri, digest)
        first_key += len(index)
    return None


def _scan_tar(fs: Any, path: str, doc_id: str, needle: bytes) -> tuple[str, int, int, int, int] | None:
    with fs.open_input_stream(path) as f:
        tokens: dict[str, tuple[int, int]] = {}
        for member, blob in iter_members(f, want=lambda name: name.endswith(".json")):
            key, _, ext = member.name.partition(".")
            if ext == "tokens":
                tokens[key] = (member.offset, member.size)
            elif ext == "json" and blob is not None:
                if needle in blob and json.loads(blob).get("doc_id") == doc_id:
                    t_off, _ = tokens.get(key, (-1, 0))
                    meta = json.loads(blob)
                    return key, t_off, int(meta.get("n_tokens", -1)), member.offset, member.size
    return None


def doc_at_member(cfg: Config, shard: str, member: str, *, version: str = "current") -> str:
    """The doc_id of a shard member. `shard` is a shard path as the manifest lists it (`runs/<run>/shard-…`),
    its file name when only one shard has it, or its number; `member` a key (with or without
    `.json`/`.tokens`) or the global sample index. Raises LineageError when either is unknown or ambiguous."""
    info = resolve_version(cfg, version)
    manifest = shard_manifest(cfg, info)
    if manifest is None or info.manifest_uri is None:
        raise LineageError(f"version {info.name} has no shard manifest")
    names = list(manifest.paths)
    if shard.isdigit() and shard not in names:
        number = int(shard)
        if number >= len(names):
            raise LineageError(f"no shard {shard}: the manifest lists {len(names)}")
    elif shard in names or f"{shard}.tar" in names:
        number = names.index(shard if shard in names else f"{shard}.tar")
    elif (matches := [i for i, n in enumerate(names) if n.rpartition("/")[2] in (shard, f"{shard}.tar")]):
        if len(matches) > 1:
            raise LineageError(f"shard name {shard!r} is ambiguous in {info.manifest_uri}: "
                               f"{', '.join(names[i] for i in matches[:3])}; give its path or number")
        number = matches[0]
    else:
        raise LineageError(f"no shard {shard!r} in {info.manifest_uri}")
    key = member.split(".", 1)[0]
    if not key.isdigit():
        raise LineageError(f"bad member {member!r}: expected a sample key such as 000000000042")
    fs, mpath = filesystem(manifest.uri, cfg.shard.s3_options())
    folder = mpath.rsplit("/", 1)[0]
    first = int(manifest.first_sample[number])
    n = int(manifest.n_samples[number])
    i = int(key) - first
    if not 0 <= i < n:
        raise LineageError(f"member {int(key):012d} is not in {names[number]} (keys {first:012d}.."
                           f"{first + n - 1:012d})")
    try:
        with fs.open_input_stream(f"{folder}/{manifest.index_paths[number]}") as f:
            row = read_index(f.read())[i]
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise LineageError(f"index of {names[number]} cannot be read: {exc}") from None
    with fs.open_input_file(f"{folder}/{names[number]}") as f:
        return str(json.loads(f.read_at(int(row["json_nbytes"]), int(row["json_offset"])))["doc_id"])


def trace_document(cfg: Config, doc_id: str, *, version: str | VersionInfo = "current") -> Lineage:
    """The lineage of `doc_id` at `version` (a name, `current`, or a resolved VersionInfo).

    Raises LineageError when raw_docs at that version has no such document.
    """
    info = version if isinstance(version, VersionInfo) else resolve_version(cfg, version)
    catalog = lake.open_catalog(cfg.lake)
    ns = cfg.lake.namespace
    tables = {n: lake.load_table(catalog, ns, n) for n in ("raw_docs", "doc_decisions", "clean_docs", "tokens")}
    raw = _rows(tables["raw_docs"], info.snapshot_id("raw_docs"), "doc_id", doc_id)
    if not raw:
        raise LineageError(f"document {doc_id!r} is not in raw_docs at version {info.name}")
    if len(raw) > 1:
        log.warning("doc_id %s has %d raw_docs rows; showing the first", doc_id, len(raw))
    r = raw[0]
    source = {k: r.get(k) for k in ("source_type", "source_uri", "source_partition", "source_offset")}
    out = Lineage(doc_id=doc_id, version=info.name, source=source, snapshots=dict(info.snapshots),
                  ingest_run_id=r.get("run_id"))
    raw_snap = info.snapshot_id("raw_docs")
    if tables["raw_docs"] is not None and raw_snap is not None:
        out.ingest_snapshot_id = _ingest_snapshot(tables["raw_docs"], raw_snap, r.get("run_id"))
    dec = _rows(tables["doc_decisions"], info.snapshot_id("doc_decisions"), "doc_id", doc_id)
    if dec:
        d = dec[0]
        out.decision, out.reason = d.get("decision"), d.get("reason")
        out.cluster_id, out.kept_doc_id = d.get("cluster_id"), d.get("kept_doc_id")
        # absent (None) in decisions written before the evidence columns existed
        out.similarity, out.verified_by, out.cluster_size = d.get("similarity"), d.get("verified_by"), d.get("cluster_size")
        out.signals = {f.name: d[f.name] for f in SIGNAL_FIELDS if d.get(f.name) is not None}
    out.in_clean_docs = bool(_rows(tables["clean_docs"], info.snapshot_id("clean_docs"), "doc_id", doc_id))
    toks = _rows(tables["tokens"], info.snapshot_id("tokens"), "doc_id", doc_id)
    if toks:
        out.n_tokens = toks[0].get("n_tokens")
    manifest = shard_manifest(cfg, info)
    if manifest is not None and info.manifest_uri is not None and out.decision in ("kept", None):
        out.position = locate_in_shards(manifest, info.manifest_uri, doc_id, cfg.shard.s3_options())
    return out
