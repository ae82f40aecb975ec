"""A small lake built directly with pipelines.lake (no Spark): every table plus real tar shards and a manifest.

Shared by the versions tests (through conftest.py) and tests/integration/test_report_chromium.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines import lake
from pipelines.config import Config
from pipelines.lake import summary as keys
from schemas import TABLES
from schemas.signals import SIGNAL_FIELDS
from sharding.format.tar import sample_json

INDEX_DTYPE = np.dtype([("tokens_offset", "<i8"), ("n_tokens", "<i8"), ("json_offset", "<i8"),
                        ("json_nbytes", "<i8")])
LANGS = ("en", "de", "fr")


def doc(doc_id: str, *, decision: str = "kept", reason: str | None = None, uri: str = "file:///data/a.jsonl",
        offset: int = 0, language: str = "en", n_words: int = 50, kept_doc_id: str | None = None,
        n_tokens: int | None = None) -> dict[str, Any]:
    """One document's row data across the tables; duplicates name the kept member of their cluster."""
    return {"doc_id": doc_id, "decision": decision, "reason": reason, "uri": uri, "offset": offset,
            "language": language, "n_words": n_words, "kept_doc_id": kept_doc_id,
            "n_tokens": n_tokens if n_tokens is not None else n_words * 2}


def _signal_column(f: pa.Field, docs: list[dict[str, Any]]) -> pa.Array:
    """Values for any signal column, so the fixture keeps working when signals are added."""
    if f.name == "language":
        return pa.array([d["language"] for d in docs], f.type)
    if f.name == "n_words":
        return pa.array([d["n_words"] for d in docs], f.type)
    if pa.types.is_integer(f.type):
        return pa.array([d["n_words"] * 5 + i % 7 for i, d in enumerate(docs)], f.type)
    if pa.types.is_floating(f.type):
        return pa.array([0.5 + (d["n_words"] % 10) / 20 for d in docs], f.type)
    if pa.types.is_boolean(f.type):
        return pa.array([d["n_words"] % 2 == 0 for d in docs], f.type)
    return pa.array([f"{f.name}-{d['doc_id']}" for d in docs], pa.string()).cast(f.type)


def _table(name: str, docs: list[dict[str, Any]], columns: dict[str, list[Any]]) -> pa.Table:
    schema = TABLES[name].arrow_schema
    signal_names = {f.name for f in SIGNAL_FIELDS}
    arrays = []
    for f in schema:
        if f.name in columns:
            arrays.append(pa.array(columns[f.name], f.type))
        elif f.name in signal_names:
            arrays.append(_signal_column(f, docs))
        else:
            arrays.append(pa.nulls(len(docs), f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _source_cols(docs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {"doc_id": [d["doc_id"] for d in docs], "source_type": ["local"] * len(docs),
            "source_uri": [d["uri"] for d in docs], "source_partition": [None] * len(docs),
            "source_offset": [d["offset"] for d in docs]}


def write_shards(folder: Path, kept: list[dict[str, Any]], per_shard: int, run: str = "r") -> dict[str, Any]:
    """Tar shards in the tokenmill layout (`<key>.tokens` + `<key>.json`, an index per shard) under
    `runs/<run>/`, the manifest `manifest-<run>.json` and its copy `manifest.json`, as the shard stage
    publishes them: nothing earlier is overwritten."""
    run_dir = folder / "runs" / run
    run_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for s, start in enumerate(range(0, len(kept), per_shard)):
        name = f"shard-{s:06d}.tar"
        buf = io.BytesIO()
        rows = []
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for key, d in enumerate(kept[start:start + per_shard], start=start):
                toks = np.arange(d["n_tokens"], dtype="<u2").tobytes()
                meta = sample_json(d["doc_id"], d["n_tokens"], f"local:{d['uri']}")  # as the shard stage writes it
                offsets = []
                for suffix, payload in ((".tokens", toks), (".json", meta)):
                    info = tarfile.TarInfo(f"{key:012d}{suffix}")
                    info.size, info.mtime, info.mode = len(payload), 0, 0o644
                    offsets.append(tar.offset + tarfile.BLOCKSIZE)
                    tar.addfile(info, io.BytesIO(payload))
                rows.append((offsets[0], d["n_tokens"], offsets[1], len(meta)))
        data = buf.getvalue()
        tmp = run_dir / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(run_dir / name)
        index_file = run_dir / f"shard-{s:06d}.idx.npy"
        np.save(index_file, np.array(rows, dtype=INDEX_DTYPE))
        entries.append({"path": f"runs/{run}/{name}", "index": f"runs/{run}/{index_file.name}", "bytes": len(data), "n_samples": len(rows),
                        "n_tokens": sum(r[1] for r in rows), "sha256": hashlib.sha256(data).hexdigest(),
                        "index_sha256": hashlib.sha256(index_file.read_bytes()).hexdigest()})
    manifest = {"format": "tokenmill-shards/1", "token_dtype": "uint16", "eod_id": 0, "vocab_size": 8192,
                "tokenizer_sha256": "0" * 64, "target_bytes": 1 << 20, "n_shards": len(entries), "n_samples": len(kept),
                "n_tokens": sum(e["n_tokens"] for e in entries),
                "total_bytes": sum(e["bytes"] for e in entries), "params_hash": "p", "shards": entries}
    (folder / f"manifest-{run}.json").write_text(json.dumps(manifest, indent=2))
    tmp = folder / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(folder / "manifest.json")
    return manifest


def build_lake(cfg: Config, docs: list[dict[str, Any]], *, per_shard: int = 3) -> dict[str, int | None]:
    """Write (overwrite) every table from `docs` as one run would; return the new snapshot ids per table."""
    catalog = lake.open_catalog(cfg.lake)
    run_id = uuid.uuid4().hex[:8]
    kept = [d for d in docs if d["decision"] == "kept"]
    n = len(docs)
    raw = _table("raw_docs", docs, {**_source_cols(docs), "text": [f"text of {d['doc_id']}" for d in docs],
                                    "run_id": [run_id] * n})
    dec = _table("doc_decisions", docs, {
        **_source_cols(docs), "decision": [d["decision"] for d in docs], "reason": [d["reason"] for d in docs],
        "kept_doc_id": [d["kept_doc_id"] for d in docs],
        "cluster_id": [min(d["doc_id"], d["kept_doc_id"]) if d["kept_doc_id"] else None for d in docs],
        "similarity": [0.9 if d["kept_doc_id"] else None for d in docs],
        "verified_by": ["shingles" if d["kept_doc_id"] else None for d in docs],
        "cluster_size": [1 + sum(o["kept_doc_id"] == d["doc_id"] for o in docs) if d["decision"] == "kept" else None
                         for d in docs]})
    clean = _table("clean_docs", kept, {**_source_cols(kept), "text": [f"text of {d['doc_id']}" for d in kept]})
    toks = _table("tokens", kept, {"doc_id": [d["doc_id"] for d in kept],
                                   "tokens": [np.arange(d["n_tokens"], dtype="<u2").tobytes() for d in kept],
                                   "n_tokens": [d["n_tokens"] for d in kept],
                                   "source": [f"local:{d['uri']}" for d in kept]})
    folder = Path(cfg.shards_uri())
    manifest = write_shards(folder, kept, per_shard, run_id)
    muri = f"file://{folder / f'manifest-{run_id}.json'}"
    sh = manifest["shards"]
    shards = _table("shards", [], {"shard_index": list(range(len(sh))), "path": [e["path"] for e in sh],
                                   "uri": [f"file://{folder / e['path']}" for e in sh],
                                   "bytes": [e["bytes"] for e in sh], "n_samples": [e["n_samples"] for e in sh],
                                   "n_tokens": [e["n_tokens"] for e in sh], "sha256": [e["sha256"] for e in sh],
                                   "manifest_uri": [muri] * len(sh)})
    snaps: dict[str, int | None] = {}
    for name, data, stage in (("raw_docs", raw, "ingest"), ("doc_decisions", dec, "curate"),
                              ("clean_docs", clean, "curate"), ("tokens", toks, "tokenize"),
                              ("shards", shards, "shard")):
        table = lake.ensure_table(catalog, cfg.lake.namespace, name)
        f = lake.write_data_file(lake.data_dir(table), data, prefix=name)
        summary = lake.snapshot_summary(cfg, stage, run_id)
        if stage == "ingest":
            summary["tokenmill.records_read"] = str(n)
        if stage == "shard":  # as the shard stage records it
            blob = (folder / f"manifest-{run_id}.json").read_bytes()
            summary[keys.MANIFEST_SHA256] = hashlib.sha256(blob).hexdigest()
            summary[keys.MANIFEST_URI] = muri
        snaps[name] = lake.commit_files(table, [f] if f else [], summary, overwrite=True)
    lake.ensure_table(catalog, cfg.lake.namespace, "quarantine")
    return snaps
