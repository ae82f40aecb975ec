"""ShardCache: LRU by size, prefetch, size checks (a local pyarrow filesystem stands in for S3)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pyarrow import fs as pafs

from sharding.loader.cache import ShardCache


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    root = tmp_path / "remote"
    root.mkdir()
    for i in range(5):
        (root / f"shard-{i}.tar").write_bytes(bytes([i]) * 1000)
    return root


def test_get_copies_once_and_evicts_least_recently_used(remote: Path, tmp_path: Path) -> None:
    cache = ShardCache(tmp_path / "cache", max_bytes=3000, filesystem=pafs.LocalFileSystem())
    paths = []
    for i in range(3):
        p = cache.get(str(remote / f"shard-{i}.tar"), 1000)
        assert p.read_bytes() == bytes([i]) * 1000
        paths.append(p)
        cache.release(str(remote / f"shard-{i}.tar"))
        time.sleep(0.01)
    os.utime(paths[0])  # shard 0 used again: now shard 1 is the oldest
    cache.get(str(remote / "shard-3.tar"), 1000)
    assert paths[0].exists() and not paths[1].exists() and paths[2].exists()
    assert cache.cached_bytes() <= 3000


def test_files_in_use_are_not_evicted(remote: Path, tmp_path: Path) -> None:
    cache = ShardCache(tmp_path / "cache", max_bytes=2000, filesystem=pafs.LocalFileSystem())
    held = cache.get(str(remote / "shard-0.tar"), 1000)
    for i in (1, 2):
        cache.get(str(remote / f"shard-{i}.tar"), 1000)
        cache.release(str(remote / f"shard-{i}.tar"))
    assert held.exists()


def test_prefetch_fetches_in_the_background(remote: Path, tmp_path: Path) -> None:
    cache = ShardCache(tmp_path / "cache", max_bytes=10_000, filesystem=pafs.LocalFileSystem())
    cache.prefetch([(str(remote / f"shard-{i}.tar"), 1000) for i in range(4)])
    got = [cache.get(str(remote / f"shard-{i}.tar"), 1000) for i in range(4)]
    cache.close()
    assert [p.read_bytes()[0] for p in got] == [0, 1, 2, 3]


def test_size_mismatch_and_oversize_raise(remote: Path, tmp_path: Path) -> None:
    cache = ShardCache(tmp_path / "cache", max_bytes=1500, filesystem=pafs.LocalFileSystem())
    with pytest.raises(OSError, match="fetched 1000 bytes"):
        cache.get(str(remote / "shard-0.tar"), 999)
    with pytest.raises(ValueError, match="cache limit"):
        cache.get(str(remote / "shard-0.tar"), 2000)
    assert not any(p.name.endswith(".part") for p in (tmp_path / "cache").iterdir())
