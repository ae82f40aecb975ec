"""TokenLoader streaming from an S3 endpoint (moto's ThreadedMotoServer) through a bounded cache."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from loader_shard_fixture import id_docs, write_shards

from sharding import RemoteOptions, TokenLoader

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_streams_from_s3_like_from_local_with_a_bounded_cache(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    manifest = write_shards(tmp_path / "ds", id_docs(120, seed=2, max_len=30), docs_per_shard=10)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="shards")
    for p in manifest.parent.iterdir():
        client.upload_file(str(p), "shards", f"v1/{p.name}")
    biggest = max(p.stat().st_size for p in manifest.parent.glob("*.tar"))
    opts = RemoteOptions(
        endpoint=s3_endpoint,
        region="us-east-1",
        cache_dir=str(tmp_path / "cache"),
        cache_limit_bytes=5 * biggest,
    )
    remote = TokenLoader(
        "s3://shards/v1/manifest.json", seq_len=16, batch_size=4, seed=1, block_shards=2, remote=opts
    )
    local = TokenLoader(manifest, seq_len=16, batch_size=4, seed=1, block_shards=2)
    got = [b["input_ids"].clone() for b in remote]
    want = [b["input_ids"].clone() for b in local]
    assert len(got) == len(want) > 0
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    cached = [p for p in (tmp_path / "cache").iterdir() if p.suffix == ".tar"]
    assert 0 < sum(p.stat().st_size for p in cached) <= 5 * biggest
    assert len(cached) < 12  # 12 shards streamed through a cache that holds at most 5
    remote.close()
    assert np.unique(torch.cat(got).numpy()).size > 100
