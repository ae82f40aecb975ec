"""Atomic object sinks (local: temporary name then rename; S3: one multipart upload completed only on success)
and the small object operations of a shard output folder (write, read, list, delete names)."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any, Protocol

from pipelines.storage import S3Options, is_s3, local_path, s3_client, split_s3

log = logging.getLogger(__name__)

S3_PART_BYTES = 16 * 1024 * 1024  # S3 needs >= 5 MiB for every part but the last


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


def _key(out_uri: str, name: str) -> tuple[str, str]:
    bucket, prefix = split_s3(out_uri)
    return bucket, f"{prefix}/{name}" if prefix else name


class LocalSink:
    """Writes `<dir>/<name>` through `.<name>.tmp-<random>`, renamed into place on commit."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.final = directory / name
        self.tmp = directory / f".{name}.tmp-{uuid.uuid4().hex}"
        self._f = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort

    def write(self, data: bytes) -> None:
        self._f.write(data)

    def commit(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        self._f.close()
        self.tmp.unlink(missing_ok=True)


class S3MultipartSink:
    """One multipart upload of `s3://bucket/key`: the object appears only when `commit` completes it."""

    def __init__(self, client: Any, bucket: str, key: str, part_bytes: int = S3_PART_BYTES) -> None:
        self.client, self.bucket, self.key, self.part_bytes = client, bucket, key, part_bytes
        self.upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        self.parts: list[dict[str, Any]] = []
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= self.part_bytes:
            self._upload(bytes(self.buf[: self.part_bytes]))
            del self.buf[: self.part_bytes]

    def _upload(self, chunk: bytes) -> None:
        number = len(self.parts) + 1
        resp = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=chunk
        )
        self.parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    def commit(self) -> None:
        if self.buf or not self.parts:
            self._upload(bytes(self.buf))
            self.buf.clear()
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)


def open_sink(out_uri: str, name: str, *, s3: S3Options | None = None, client: Any = None) -> Sink:
    """An atomic sink for `<out_uri>/<name>` (local path, file:// or s3://)."""
    if is_s3(out_uri):
        bucket, key = _key(out_uri, name)
        return S3MultipartSink(client or s3_client(s3), bucket, key)
    return LocalSink(Path(local_path(out_uri)), name)


def write_object(out_uri: str, name: str, data: bytes, *, s3: S3Options | None = None) -> None:
    """Write `data` to `<out_uri>/<name>` atomically."""
    sink = open_sink(out_uri, name, s3=s3)
    try:
        sink.write(data)
    except BaseException:
        sink.abort()
        raise
    sink.commit()


def read_object(out_uri: str, name: str, *, s3: S3Options | None = None) -> bytes:
    if is_s3(out_uri):
        bucket, key = _key(out_uri, name)
        return s3_client(s3).get_object(Bucket=bucket, Key=key)["Body"].read()
    return (Path(local_path(out_uri)) / name).read_bytes()


def list_names(out_uri: str, *, s3: S3Options | None = None) -> list[str]:
    """Names of the objects directly under `out_uri` (empty when it does not exist)."""
    if is_s3(out_uri):
        bucket, prefix = split_s3(out_uri)
        client = s3_client(s3)
        base = f"{prefix}/" if prefix else ""
        names: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=base, Delimiter="/"
        ):
            names += [obj["Key"][len(base) :] for obj in page.get("Contents", [])]
        return names
    d = Path(local_path(out_uri))
    return sorted(p.name for p in d.iterdir() if p.is_file()) if d.is_dir() else []


def delete_names(out_uri: str, names: list[str], *, s3: S3Options | None = None) -> None:
    if not names:
        return
    if is_s3(out_uri):
        bucket, prefix = split_s3(out_uri)
        client = s3_client(s3)
        keys = [{"Key": f"{prefix}/{n}" if prefix else n} for n in names]
        for i in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000]})
        return
    for n in names:
        (Path(local_path(out_uri)) / n).unlink(missing_ok=True)
