"""The loader's S3 cache against moto's server: resume and workers give the local batches, the cache stays
within a one-block limit (it once overflowed it) and prefetching follows prefetch_shards (once ignored)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from loader_batches import (
    SEQ,
    _collect,
    _same,
)
from loader_shard_fixture import id_docs, write_shards

from sharding import RemoteOptions, TokenLoader
from sharding.loader import cache

# ----------------------------------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    """A moto S3 endpoint holding 12 shards of equal size (and their local copy): endpoint, manifest, size."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    manifest = write_shards(
        tmp_path_factory.mktemp("s3") / "ds", id_docs(120, seed=2, min_len=20, max_len=20), docs_per_shard=10
    )
    sizes = {p.stat().st_size for p in manifest.parent.glob("*.tar")}
    assert len(sizes) == 1
    with pytest.MonkeyPatch.context() as mp:
        for k, v in (
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ):
            mp.setenv(k, v)
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="shards")
        for p in manifest.parent.iterdir():
            client.upload_file(str(p), "shards", f"v1/{p.name}")
    yield endpoint, manifest, sizes.pop()
    server.stop()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in (
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(k, v)


def _remote(endpoint: str, tmp_path: Path, limit: int, **kw) -> RemoteOptions:
    return RemoteOptions(
        endpoint=endpoint,
        region="us-east-1",
        cache_dir=str(tmp_path / "cache"),
        cache_limit_bytes=limit,
        **kw,
    )


URI = "s3://shards/v1/manifest.json"


@pytest.mark.integration
def test_s3_resume_and_workers_give_the_local_batches(s3, aws, tmp_path) -> None:
    endpoint, manifest, size = s3
    kw = dict(seq_len=SEQ, batch_size=4, seed=1, block_shards=2)
    local = _collect(TokenLoader(manifest, **kw))
    opts = _remote(endpoint, tmp_path, 6 * size)
    first = TokenLoader(URI, remote=opts, **kw)
    head = _collect(first, 7)
    state = first.state_dict()
    first.close()
    resumed = TokenLoader(URI, remote=opts, **kw)
    resumed.load_state_dict(state)
    _same(head + _collect(resumed), local)
    resumed.close()
    workers = TokenLoader(URI, remote=_remote(endpoint, tmp_path / "w", 6 * size), num_workers=2, **kw)
    _same(_collect(workers), local)
    with pytest.raises(ValueError, match="cache_limit_bytes"):
        TokenLoader(URI, remote=_remote(endpoint, tmp_path / "small", 2 * size - 1), **kw)


@pytest.mark.integration
def test_s3_cache_stays_within_a_limit_of_one_block(s3, aws, tmp_path, monkeypatch) -> None:
    endpoint, manifest, size = s3
    limit = 2 * size  # one block of 2 shards: the smallest limit the loader accepts
    peak = [0]
    real = cache.ShardCache._evict

    def evict(self, incoming):  # type: ignore[no-untyped-def]
        real(self, incoming)  # runs under the cache-wide lock: the folder is stable until we return
        used = 0
        for p in self.root.iterdir():
            if not p.name.endswith(".lock"):
                try:
                    used += p.stat().st_size
                except FileNotFoundError:  # a failed download's .part, removed outside the lock
                    pass
        peak[0] = max(peak[0], used + incoming)

    monkeypatch.setattr(cache.ShardCache, "_evict", evict)
    kw = dict(seq_len=SEQ, batch_size=4, seed=1, block_shards=2)
    remote = TokenLoader(URI, remote=_remote(endpoint, tmp_path, limit), **kw)
    got = _collect(remote)
    remote.close()
    _same(got, _collect(TokenLoader(manifest, **kw)))
    assert peak[0] <= limit, f"cache held {peak[0]} bytes, limit {limit}"


@pytest.mark.integration
def test_s3_prefetch_follows_prefetch_shards(s3, aws, tmp_path, monkeypatch) -> None:
    endpoint, _, size = s3
    asked: list[int] = []
    real = cache.ShardCache.prefetch

    def prefetch(self, items):  # type: ignore[no-untyped-def]
        items = list(items)
        asked.append(len(items))
        return real(self, items)

    monkeypatch.setattr(cache.ShardCache, "prefetch", prefetch)
    opts = _remote(endpoint, tmp_path, 12 * size, prefetch_shards=1)
    loader = TokenLoader(URI, seq_len=SEQ, batch_size=4, seed=1, block_shards=4, remote=opts)
    _collect(loader, 3)
    loader.close()
    assert asked and max(asked) <= 1, asked
