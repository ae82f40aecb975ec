"""Test helper: write token shards in the tokenmill-shards/1 format (tar + .idx.npy + manifest.json).

A small, independent writer so the loader's tests do not depend on the production shard writer.
Documents are given as numpy arrays of token ids; shards hold ``docs_per_shard`` documents each.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

INDEX_DTYPE = np.dtype(
    [("tokens_offset", "<i8"), ("n_tokens", "<i8"), ("json_offset", "<i8"), ("json_nbytes", "<i8")]
)


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> int:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    header = tar.offset
    tar.addfile(info, io.BytesIO(data))
    return header + tarfile.BLOCKSIZE  # ustar names here fit one header block


def write_shards(
    out: Path,
    docs: Sequence[np.ndarray],
    *,
    docs_per_shard: int,
    token_dtype: str = "uint16",
    eod_id: int = 0,
    vocab_size: int = 65536,
    tokenizer_sha256: str = "0" * 64,
    source: str = "test",
) -> Path:
    """Write ``docs`` as shards under ``out``; returns the manifest path. Keys are global sample indexes."""
    out.mkdir(parents=True, exist_ok=True)
    dtype = np.dtype(token_dtype).newbyteorder("<")
    shards = []
    for s, lo in enumerate(range(0, len(docs), docs_per_shard)):
        tar_path = out / f"shard-{s:06d}.tar"
        rows = []
        with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for key in range(lo, min(lo + docs_per_shard, len(docs))):
                toks = np.asarray(docs[key]).astype(dtype)
                meta = json.dumps({"doc_id": f"d{key}", "n_tokens": len(toks), "source": source}).encode()
                t_off = _member(tar, f"{key:012d}.tokens", toks.tobytes())
                j_off = _member(tar, f"{key:012d}.json", meta)
                rows.append((t_off, len(toks), j_off, len(meta)))
        index = np.array(rows, dtype=INDEX_DTYPE)
        idx_path = out / f"shard-{s:06d}.idx.npy"
        np.save(idx_path, index, allow_pickle=False)
        data = tar_path.read_bytes()
        shards.append(
            {
                "path": tar_path.name,
                "index": idx_path.name,
                "bytes": len(data),
                "n_samples": len(rows),
                "n_tokens": int(index["n_tokens"].sum()),
                "sha256": hashlib.sha256(data).hexdigest(),
                "index_sha256": hashlib.sha256(idx_path.read_bytes()).hexdigest(),
            }
        )
    manifest = {
        "format": "tokenmill-shards/1",
        "token_dtype": token_dtype,
        "eod_id": eod_id,
        "vocab_size": vocab_size,
        "tokenizer_sha256": tokenizer_sha256,
        "target_bytes": 1 << 20,
        "n_shards": len(shards),
        "n_samples": sum(s["n_samples"] for s in shards),
        "n_tokens": sum(s["n_tokens"] for s in shards),
        "total_bytes": sum(s["bytes"] for s in shards),
        "params_hash": "test",
        "shards": shards,
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path


def id_docs(
    n_docs: int, *, seed: int, min_len: int = 1, max_len: int = 40, first_id: int = 1
) -> list[np.ndarray]:
    """Documents whose every token is the document's id (``first_id + i``), so any window can be
    traced back to the documents it came from; lengths drawn from ``[min_len, max_len]``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n_docs)
    return [np.full(int(n), first_id + i, dtype=np.int64) for i, n in enumerate(lengths)]
