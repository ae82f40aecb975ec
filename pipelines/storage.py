"""The storage seam: S3 settings, URI normalisation, and the pyarrow filesystem (or boto3 client) for a URI.

Every part of tokenmill that touches storage (ingest, the lake, the shard writer, the loader, versions,
audit, lineage) goes through here, so they agree on what a URI means and on how S3 is reached:

- `normalize_uri` turns a plain path, a ``file://`` URI or an ``s3://`` (``s3a://``, ``s3n://``) URI into one
  canonical form: ``file:///absolute/path`` or ``s3://bucket/key``.
- `S3Options` holds the S3 settings; `S3Options.resolved` is the one place the AWS environment variables are
  read (at the moment a filesystem or client is built, in the process that uses it: Spark executors resolve
  their own environment, and no credential travels inside a pickled task).
- `filesystem(uri, options)` gives ``(pyarrow FileSystem, path inside it)``; `s3_client(options)` a boto3
  client from the same settings, for what pyarrow does not do (multipart uploads, listing with ETags).

Importing this module imports neither pyarrow.fs nor boto3 (nor Spark, pyiceberg or torch).
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.errors import MissingDependencyError, StorageError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds
    from pyarrow import fs as pafs

log = logging.getLogger(__name__)

S3_SCHEMES = ("s3", "s3a", "s3n")
DEFAULT_REGION = "us-east-1"


class S3Options(BaseModel):
    """How to reach S3 or any S3-compatible endpoint. Every field may be left unset: `resolved` fills it.

    ``endpoint``: a URL such as ``http://127.0.0.1:9000``; without a scheme, https is meant
    (``minio.example.org`` -> ``https://minio.example.org``); default ``AWS_ENDPOINT_URL_S3``, then
    ``AWS_ENDPOINT_URL``, then AWS itself. ``region``: default ``AWS_REGION``, then ``AWS_DEFAULT_REGION``,
    then ``us-east-1``. ``anonymous``: unsigned requests (public buckets), no credentials looked up.
    ``access_key``/``secret_key``/``session_token``: default ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
    ``AWS_SESSION_TOKEN``; when neither is set, the SDK's own chain applies (profile, instance role).
    Keys never appear in ``repr`` (so not in logs either).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str | None = None
    region: str | None = None
    anonymous: bool = False
    access_key: str | None = Field(default=None, repr=False)
    secret_key: str | None = Field(default=None, repr=False)
    session_token: str | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _check_keys(self) -> S3Options:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("access_key and secret_key must be given together")
        if self.session_token is not None and self.access_key is None:
            raise ValueError("session_token needs access_key and secret_key")
        if self.anonymous and self.access_key is not None:
            raise ValueError("anonymous access takes no access_key/secret_key")
        return self

    def resolved(self, environ: Mapping[str, str] | None = None) -> S3Options:
        """A copy with every unset field taken from ``environ`` (default: ``os.environ``) or its default,
        and the endpoint given a scheme. The only place tokenmill reads the AWS environment variables."""
        env = os.environ if environ is None else environ
        endpoint = self.endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        if endpoint and "://" not in endpoint:
            endpoint = f"https://{endpoint}"
        region = self.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        keys: dict[str, str | None] = {
            "access_key": self.access_key, "secret_key": self.secret_key, "session_token": self.session_token
        }
        if not self.anonymous and self.access_key is None:
            access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
            if access and secret:
                keys = {"access_key": access, "secret_key": secret,
                        "session_token": env.get("AWS_SESSION_TOKEN") or None}
        return self.model_copy(update={"endpoint": endpoint, "region": region, **keys})

    def pyarrow_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``pyarrow.fs.S3FileSystem`` for these (resolved) settings."""
        r = self.resolved()
        kwargs: dict[str, Any] = {"region": r.region}
        if r.endpoint:
            parts = urlsplit(r.endpoint)
            kwargs["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
            kwargs["scheme"] = parts.scheme
        if r.anonymous:
            kwargs["anonymous"] = True
        elif r.access_key is not None:
            kwargs["access_key"] = r.access_key
            kwargs["secret_key"] = r.secret_key
            if r.session_token:
                kwargs["session_token"] = r.session_token
        return kwargs


def is_s3(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` names an object in S3 (``s3://``, ``s3a://``, ``s3n://``)."""
    return urlsplit(str(uri)).scheme in S3_SCHEMES and "://" in str(uri)


def normalize_uri(uri: str | os.PathLike[str]) -> str:
    """The canonical form of a location: ``s3://bucket/key`` for S3 (``s3a``/``s3n`` become ``s3``) and
    ``file:///absolute/path`` for a plain path (relative ones against the working directory, ``..``
    collapsed, symlinks kept) or a ``file:`` URI (``file:///p``, ``file:/p``, ``file://localhost/p``).
    Percent signs are kept as they are: tokenmill writes ``file://`` + path, never percent-encoded.
    Raises StorageError naming the URI for another scheme, an s3 URI without a bucket, or a file URI on
    another host.

    >>> normalize_uri("s3a://bucket/a/b.json")
    's3://bucket/a/b.json'
    >>> normalize_uri("file:/data/x") == normalize_uri("file:///data/x") == normalize_uri("/data/x")
    True
    """
    text = os.fspath(uri)
    if not text:
        raise StorageError("an empty string is not a location")
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if sep and scheme in S3_SCHEMES and rest.startswith("//"):
        bucket_key = rest[2:]
        if not bucket_key.split("/", 1)[0]:
            raise StorageError(f"{text}: an s3 URI needs a bucket (s3://bucket/key)")
        return f"s3://{bucket_key}"
    if sep and scheme == "file":
        path = rest
        if path.startswith("//"):
            host, slash, tail = path[2:].partition("/")
            if host not in ("", "localhost"):
                raise StorageError(f"{text}: file URI on host {host!r}; only local files are served")
            path = slash + tail
        if not path.startswith("/"):
            raise StorageError(f"{text}: a file URI needs an absolute path (file:///path)")
        return "file://" + "/" + posixpath.normpath(path).lstrip("/")  # normpath keeps a leading "//"
    if sep and "://" in text:
        raise StorageError(f"{text}: unsupported URI scheme {scheme!r}; use a local path, file:// or s3://")
    return "file://" + os.path.abspath(text)


def local_path(uri: str | os.PathLike[str]) -> str:
    """The absolute local path of a plain path or ``file:`` URI; StorageError for an S3 URI."""
    norm = normalize_uri(uri)
    if not norm.startswith("file://"):
        raise StorageError(f"{os.fspath(uri)}: not a local path")
    return norm.removeprefix("file://")


def split_s3(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of an S3 URI, the key without leading or trailing ``/``; StorageError otherwise."""
    norm = normalize_uri(uri)
    if not norm.startswith("s3://"):
        raise StorageError(f"{uri}: not an s3:// URI")
    bucket, _, key = norm.removeprefix("s3://").partition("/")
    return bucket, key.strip("/")


def filesystem(uri: str | os.PathLike[str], options: S3Options | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem serving ``uri`` and the path inside it: ``(LocalFileSystem, "/abs/path")`` or
    ``(S3FileSystem, "bucket/key")``; ``options`` (default: all from the environment) apply to S3 only.
    Raises StorageError for a URI no backend serves (see `normalize_uri`)."""
    from pyarrow import fs as pafs

    path = filesystem_path(uri)
    if normalize_uri(uri).startswith("s3://"):
        return pafs.S3FileSystem(**_fs_kwargs(options or S3Options())), path
    return pafs.LocalFileSystem(), path


def filesystem_path(uri: str | os.PathLike[str]) -> str:
    """The path of ``uri`` inside the filesystem `filesystem` gives for it ("/abs/path" or "bucket/key"),
    without building that filesystem."""
    return normalize_uri(uri).removeprefix("s3://").removeprefix("file://")


def parquet_dataset(uris: Sequence[str], options: S3Options | None = None, schema: pa.Schema | None = None
                    ) -> ds.Dataset:
    """A pyarrow dataset of the Parquet files `uris` (all local, or all on S3 reached with `options`), with
    `schema` when given, else the first file's. Nothing is read until it is scanned: a scanner projects the
    columns it is asked for and reads on pyarrow's threads. Raises ValueError for no files, StorageError as
    `filesystem` does."""
    import pyarrow.dataset as ds

    if not uris:
        raise ValueError("a Parquet dataset needs at least one file")
    fs, _ = filesystem(uris[0], options)
    return ds.dataset([filesystem_path(u) for u in uris], schema=schema, format="parquet", filesystem=fs)


def delete_tree(uri: str, options: S3Options | None = None) -> None:
    """Delete a folder (local) or every object under a prefix (S3); a missing one is fine.

    On S3, pyarrow leaves an empty marker object for the parent "folder" so that it still seems to exist
    (``prefix/``). That marker alone is deleted afterwards, by its exact key, and only when it is an empty
    object: objects under the parent (another run's folder, say) are never touched."""
    fs, path = filesystem(uri, options)
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        return
    if not normalize_uri(uri).startswith("s3://"):
        return
    bucket, key = split_s3(uri)
    parent = key.rpartition("/")[0]
    if not parent:
        return
    try:
        client = s3_client(options)
        if client.head_object(Bucket=bucket, Key=f"{parent}/").get("ContentLength", 0) == 0:
            client.delete_object(Bucket=bucket, Key=f"{parent}/")
    except Exception as exc:  # noqa: BLE001 - no marker, or not allowed: an empty marker is harmless
        log.debug("left the folder marker s3://%s/%s/: %s", bucket, parent, exc)


def _fs_kwargs(options: S3Options) -> dict[str, Any]:
    kwargs = options.pyarrow_kwargs()
    extra = getattr(options, "extra", None)  # RemoteOptions: more S3FileSystem arguments, given as is
    if extra:
        kwargs.update(extra)
    return kwargs


def s3_client(options: S3Options | None = None) -> Any:
    """A boto3 S3 client from the same settings as `filesystem`; MissingDependencyError without boto3."""
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config as BotoConfig
    except ImportError as exc:
        raise MissingDependencyError("S3 access needs boto3 (pip install boto3)") from exc
    r = (options or S3Options()).resolved()
    return boto3.client(
        "s3",
        endpoint_url=r.endpoint,
        region_name=r.region,
        aws_access_key_id=r.access_key,
        aws_secret_access_key=r.secret_key,
        aws_session_token=r.session_token,
        config=BotoConfig(signature_version=UNSIGNED) if r.anonymous else None,
    )
