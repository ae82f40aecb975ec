"""The shard manifest read back: `parse_manifest` validates a manifest's bytes into a `ShardManifest`,
`read_manifest` fetches them from a local path, a `file://` URI or an `s3://` URI first. Every reader of a
manifest (the loader, versions, audit, lineage) goes through here; errors are ManifestErrors naming the
manifest and the bad key or count."""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.storage import S3Options, filesystem, is_s3, local_path, normalize_uri
from sharding.errors import ManifestError
from sharding.format.manifest import FORMAT, MANIFEST_NAME, TOKEN_DTYPES

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ShardManifest:
    """One dataset's shards: per-shard metadata in numpy arrays (no per-sample objects), and the validated
    JSON ``document`` they came from (what `sharding.format.manifest_bytes` serialises, byte for byte).

    ``uri`` is where it was read (an absolute local path, or an ``s3://`` URI); ``base`` the folder shard
    paths are relative to, in the same form. ``stream_tokens[i]`` is shard ``i``'s length in the loader's
    stream: its tokens plus one EOD per document. ``first_sample[i]`` is the global index of shard ``i``'s
    first sample.
    """

    uri: str
    base: str
    token_dtype: np.dtype
    eod_id: int
    vocab_size: int
    tokenizer_sha256: str
    paths: tuple[str, ...]
    index_paths: tuple[str, ...]
    sha256: tuple[str, ...]
    index_sha256: tuple[str, ...]
    nbytes: np.ndarray
    n_samples: np.ndarray
    n_tokens: np.ndarray
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_shards(self) -> int:
        return len(self.paths)

    @property
    def remote(self) -> bool:
        return is_s3(self.base)

    @property
    def stream_tokens(self) -> np.ndarray:
        return self.n_tokens + self.n_samples

    @property
    def first_sample(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_samples)[:-1]]).astype(np.int64)

    def totals(self) -> dict[str, int]:
        """``n_shards``, ``n_samples``, ``n_tokens`` and ``total_bytes`` (validated against the document)."""
        return {"n_shards": self.n_shards, "n_samples": int(self.n_samples.sum()),
                "n_tokens": int(self.n_tokens.sum()), "total_bytes": int(self.nbytes.sum())}

    def location(self, relative: str) -> str:
        """Full local path or s3:// URI of a file named relative to the manifest's folder."""
        if self.remote:
            return f"{self.base.rstrip('/')}/{relative}"
        return str(Path(self.base) / relative)

    def identity(self) -> str:
        """sha256 over what fixes the token stream: dtype, EOD id and every shard's checksum."""
        h = hashlib.sha256(f"{self.token_dtype.str}|{self.eod_id}|{self.tokenizer_sha256}".encode())
        for digest, n in zip(self.sha256, self.n_tokens.tolist(), strict=True):
            h.update(f"|{digest}:{n}".encode())
        return h.hexdigest()


def _require(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise ManifestError(f"{where}: missing key {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ManifestError(f"{where}: key {key!r} has type {type(value).__name__}")
    return value


# A manifest lists one small entry per shard (about 300 bytes): 256 MiB is far more than any dataset needs,
# and refusing larger ones keeps a corrupt or hostile file from being read into memory whole.
MAX_MANIFEST_BYTES = 256 << 20


def _check_size(size: int | None, uri: str) -> None:
    if size is not None and size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{uri}: {size} bytes, over the {MAX_MANIFEST_BYTES} a manifest may have")


def _load_json(data: str | bytes, uri: str) -> dict[str, Any]:
    _check_size(len(data), uri)
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{uri}: not valid JSON ({exc})") from exc
    except RecursionError:
        raise ManifestError(f"{uri}: JSON nested too deep to be a manifest") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{uri}: manifest must be a JSON object")
    return doc


def parse_manifest(data: str | bytes, uri: str = MANIFEST_NAME) -> ShardManifest:
    """Validate a manifest's JSON and turn it into a ShardManifest. Raises ManifestError naming ``uri``
    and the bad key or count: unknown format or dtype, a missing or mistyped key, totals that do not add
    up, unsafe shard paths, an EOD id outside the vocabulary. A manifest with no shards is valid (an empty
    dataset); the loader refuses one itself."""
    doc = _load_json(data, uri)
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise ManifestError(f"{uri}: format {fmt!r} is not {FORMAT!r}")
    dtype_name = _require(doc, "token_dtype", str, uri)
    if dtype_name not in TOKEN_DTYPES:
        raise ManifestError(f"{uri}: token_dtype {dtype_name!r} is not one of {sorted(TOKEN_DTYPES)}")
    shards = _require(doc, "shards", list, uri)
    paths, index_paths, sha, isha, nbytes, nsamp, ntok = [], [], [], [], [], [], []
    for i, s in enumerate(shards):
        where = f"{uri}: shards[{i}]"
        if not isinstance(s, dict):
            raise ManifestError(f"{where} is not an object")
        for key in ("path", "index"):
            rel = _require(s, key, str, where)
            parts = rel.replace("\\", "/").split("/")
            if rel.startswith(("/", "\\")) or ".." in parts or "://" in rel:
                raise ManifestError(f"{where}: {key} {rel!r} must be a relative path inside the dataset")
        paths.append(s["path"])
        index_paths.append(s["index"])
        sha.append(_require(s, "sha256", str, where))
        isha.append(_require(s, "index_sha256", str, where))
        nbytes.append(_require(s, "bytes", int, where))
        nsamp.append(_require(s, "n_samples", int, where))
        ntok.append(_require(s, "n_tokens", int, where))
    n_samples = np.asarray(nsamp, dtype=np.int64)
    n_tokens = np.asarray(ntok, dtype=np.int64)
    sizes = np.asarray(nbytes, dtype=np.int64)
    if shards and (n_samples.min() <= 0 or n_tokens.min() < 0 or sizes.min() < 0):
        raise ManifestError(f"{uri}: every shard needs n_samples > 0, n_tokens >= 0 and bytes >= 0")
    for key, total in (("n_shards", len(shards)), ("n_samples", int(n_samples.sum())),
                       ("n_tokens", int(n_tokens.sum())), ("total_bytes", int(sizes.sum()))):
        if key in doc and doc[key] != total:
            raise ManifestError(f"{uri}: {key}={doc[key]} but the shards add up to {total}")
    eod_id = _require(doc, "eod_id", int, uri)
    vocab = _require(doc, "vocab_size", int, uri)
    dtype = TOKEN_DTYPES[dtype_name]
    if not 0 <= eod_id < min(vocab, np.iinfo(dtype).max + 1):
        raise ManifestError(f"{uri}: eod_id {eod_id} outside vocab_size {vocab} / {dtype_name}")
    base = posixpath.dirname(uri) if is_s3(uri) else str(Path(uri).parent)
    return ShardManifest(
        uri=uri,
        base=base,
        token_dtype=dtype,
        eod_id=eod_id,
        vocab_size=vocab,
        tokenizer_sha256=_require(doc, "tokenizer_sha256", str, uri),
        paths=tuple(paths),
        index_paths=tuple(index_paths),
        sha256=tuple(sha),
        index_sha256=tuple(isha),
        nbytes=sizes,
        n_samples=n_samples,
        n_tokens=n_tokens,
        document=doc,
    )


def manifest_location(uri: str) -> str:
    """Where the manifest of ``uri`` is: ``uri`` itself when it names a ``.json`` file, else
    ``<uri>/manifest.json`` (an S3 prefix, or a local folder). Local paths come back absolute, S3 URIs
    in their canonical ``s3://`` form; StorageError for a location no backend serves."""
    norm = normalize_uri(uri)
    if is_s3(norm):
        return norm if norm.endswith(".json") else norm.rstrip("/") + "/" + MANIFEST_NAME
    path = Path(local_path(norm))
    return str(path / MANIFEST_NAME if path.is_dir() else path)


def read_manifest(uri: str, s3: S3Options | None = None) -> ShardManifest:
    """Read and validate the manifest at a local path or ``file://`` URI (a file, or a folder holding
    manifest.json) or an ``s3://`` URI (``s3``: how to reach it; default from the environment). Raises
    ManifestError when it is missing, unreadable or invalid."""
    where = manifest_location(str(uri))
    if is_s3(where):
        fs, key = filesystem(where, s3)
        try:
            _check_size(fs.get_file_info(key).size, where)
            with fs.open_input_stream(key) as f:
                data = f.read(MAX_MANIFEST_BYTES + 1)
        except OSError as exc:  # FileNotFoundError included
            raise ManifestError(f"{where}: cannot read manifest ({exc})") from exc
    else:
        path = Path(where)
        if not path.is_file():
            raise ManifestError(f"{path}: manifest not found")
        where = str(path.resolve())
        _check_size(path.stat().st_size, where)
        with path.open("rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)  # one byte more: a file grown since is refused too
    manifest = parse_manifest(data, where)
    log.debug("manifest %s: %d shards, %d tokens", where, manifest.n_shards, int(manifest.n_tokens.sum()))
    return manifest
