"""Reading shard manifests (local or S3) into flat numpy metadata, and picking their filesystem."""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from pipelines.storage import S3Options, filesystem, is_s3, local_path, normalize_uri
from sharding.loader_errors import ManifestError

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "tokenmill-shards/1"
TOKEN_DTYPES: dict[str, np.dtype[Any]] = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
INDEX_FIELDS = ("tokens_offset", "n_tokens", "json_offset", "json_nbytes")


class RemoteOptions(S3Options):
    """How the loader reaches s3:// sources: the S3 settings of `pipelines.storage.S3Options`
    (``endpoint`` such as ``http://127.0.0.1:9000``, scheme optional, https by default; region and
    credentials from the usual AWS environment unless given) plus the shard cache: ``cache_dir`` holds
    fetched shards (default: a folder under the system temp dir) and is bounded by
    ``cache_limit_bytes`` (LRU); ``prefetch_shards`` shards ahead of the reader are fetched in the
    background. ``extra`` holds more ``pyarrow.fs.S3FileSystem`` arguments, passed as they are."""

    cache_dir: str | None = None
    cache_limit_bytes: int = Field(default=16 * 1024**3, ge=0)
    prefetch_shards: int = Field(default=4, ge=0)
    extra: dict[str, Any] = Field(default_factory=dict)


def is_remote(uri: str) -> bool:
    return is_s3(uri)


def s3_path(uri: str) -> str:
    """``s3://bucket/key`` -> ``bucket/key`` (pyarrow's path form)."""
    return normalize_uri(uri).removeprefix("s3://")


@dataclass(frozen=True)
class ShardManifest:
    """One dataset's shards: per-shard metadata in numpy arrays (no per-sample objects).

    ``base`` is the folder shard paths are relative to: a local path or an ``s3://`` URI.
    ``stream_tokens[i]`` is shard ``i``'s length in the loader's stream: its tokens plus one EOD per
    document. ``first_sample[i]`` is the global index of shard ``i``'s first sample.
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

    @property
    def n_shards(self) -> int:
        return len(self.paths)

    @property
    def remote(self) -> bool:
        return is_remote(self.base)

    @property
    def stream_tokens(self) -> np.ndarray:
        return self.n_tokens + self.n_samples

    @property
    def first_sample(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_samples)[:-1]]).astype(np.int64)

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


def parse_manifest(text: str | bytes, uri: str) -> ShardManifest:
    """Validate a manifest's JSON and turn it into a ShardManifest. Raises ManifestError naming ``uri``
    and the bad key or count (unknown format, unknown dtype, totals that do not add up, unsafe paths)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{uri}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{uri}: manifest must be a JSON object")
    fmt = doc.get("format")
    if fmt != MANIFEST_FORMAT:
        raise ManifestError(f"{uri}: format {fmt!r} is not {MANIFEST_FORMAT!r}")
    dtype_name = _require(doc, "token_dtype", str, uri)
    if dtype_name not in TOKEN_DTYPES:
        raise ManifestError(f"{uri}: token_dtype {dtype_name!r} is not one of {sorted(TOKEN_DTYPES)}")
    shards = _require(doc, "shards", list, uri)
    if not shards:
        raise ManifestError(f"{uri}: no shards")
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
    if n_samples.min() <= 0 or n_tokens.min() < 0:
        raise ManifestError(f"{uri}: every shard needs n_samples > 0 and n_tokens >= 0")
    for key, total in (
        ("n_shards", len(shards)),
        ("n_samples", int(n_samples.sum())),
        ("n_tokens", int(n_tokens.sum())),
    ):
        if key in doc and doc[key] != total:
            raise ManifestError(f"{uri}: {key}={doc[key]} but the shards add up to {total}")
    eod_id = _require(doc, "eod_id", int, uri)
    vocab = _require(doc, "vocab_size", int, uri)
    dtype = TOKEN_DTYPES[dtype_name]
    if not 0 <= eod_id < min(vocab, np.iinfo(dtype).max + 1):
        raise ManifestError(f"{uri}: eod_id {eod_id} outside vocab_size {vocab} / {dtype_name}")
    base = posixpath.dirname(uri) if is_remote(uri) else str(Path(uri).parent)
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
        nbytes=np.asarray(nbytes, dtype=np.int64),
        n_samples=n_samples,
        n_tokens=n_tokens,
    )


def read_manifest(uri: str, remote: RemoteOptions | None = None) -> ShardManifest:
    """Read and validate the manifest at a local path or file:// URI (a file, or a folder holding
    manifest.json) or an s3:// URI. Raises ManifestError when it is missing or invalid."""
    uri = str(uri)
    if is_remote(uri):
        uri = normalize_uri(uri)
        if not uri.endswith(".json"):
            uri = uri.rstrip("/") + "/manifest.json"
        fs, key = filesystem(uri, remote or RemoteOptions())
        try:
            with fs.open_input_stream(key) as f:
                text = f.read()
        except (OSError, FileNotFoundError) as exc:
            raise ManifestError(f"{uri}: cannot read manifest ({exc})") from exc
    else:
        path = Path(local_path(uri))
        if path.is_dir():
            path = path / "manifest.json"
        if not path.is_file():
            raise ManifestError(f"{path}: manifest not found")
        uri = str(path.resolve())
        text = path.read_bytes()
    manifest = parse_manifest(text, uri)
    log.debug("manifest %s: %d shards, %d tokens", uri, manifest.n_shards, int(manifest.n_tokens.sum()))
    return manifest


def check_compatible(manifests: list[ShardManifest]) -> None:
    """Sources mixed in one loader must share a tokenizer (hence vocabulary and EOD id). Raises
    ManifestError naming both manifests otherwise."""
    first = manifests[0]
    for m in manifests[1:]:
        for attr in ("tokenizer_sha256", "eod_id", "vocab_size"):
            if getattr(m, attr) != getattr(first, attr):
                raise ManifestError(
                    f"cannot mix {first.uri} and {m.uri}: {attr} differs "
                    f"({getattr(first, attr)!r} vs {getattr(m, attr)!r})"
                )
