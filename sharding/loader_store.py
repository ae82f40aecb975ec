"""Access to one dataset's shards: indexes, verified token bytes, local or fetched through the cache."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sharding.cache import ShardCache
from sharding.loader_errors import CorruptShardError
from sharding.loader_manifest import RemoteOptions, ShardManifest, s3_filesystem, s3_path
from sharding.loader_verify import check_tar_layout, load_index, sha256_file

log = logging.getLogger(__name__)

OnCorrupt = Literal["raise", "skip"]
_OPEN_SHARDS = 16  # memory maps kept open per process


class ShardStore:
    """Shards of one manifest as numpy views, each verified (sha256 and tar layout) before first use.

    ``tokens(i)`` returns the shard's bytes as a read-only uint8 memory map, or None when the shard
    is corrupt and ``on_corrupt="skip"`` (a warning names it once per process); with
    ``on_corrupt="raise"`` a corrupt shard raises CorruptShardError naming it. A corrupt *index*
    always raises, since the stream's layout depends on it. Picklable: open maps and the cache's
    threads are per process.
    """

    def __init__(
        self,
        manifest: ShardManifest,
        *,
        verify: bool = True,
        on_corrupt: OnCorrupt = "raise",
        remote: RemoteOptions | None = None,
    ) -> None:
        if on_corrupt not in ("raise", "skip"):
            raise ValueError(f"on_corrupt must be 'raise' or 'skip', got {on_corrupt!r}")
        self.manifest = manifest
        self.verify = verify
        self.on_corrupt = on_corrupt
        self.remote = remote or RemoteOptions()
        self.cache: ShardCache | None = None
        self.keep_open = _OPEN_SHARDS  # shard maps kept per process (and exempt from cache eviction)
        if manifest.remote:
            root = self.remote.cache_dir or str(
                Path(tempfile.gettempdir())
                / "tokenmill-shard-cache"
                / hashlib.sha1(manifest.base.encode()).hexdigest()[:12]
            )
            self.cache = ShardCache(root, max_bytes=self.remote.cache_limit_bytes, filesystem=None)
        self._reset()

    def _reset(self) -> None:
        self._maps: OrderedDict[int, np.ndarray | None] = OrderedDict()
        self._indexes: OrderedDict[int, np.ndarray] = OrderedDict()
        self._verified: set[int] = set()
        self._bad: set[int] = set()
        self._digests: dict[int, str] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_maps", "_indexes", "_verified", "_bad", "_digests"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def _cache(self) -> ShardCache:
        assert self.cache is not None
        if self.cache.fs is None:
            self.cache.fs = s3_filesystem(self.remote)
        return self.cache

    def _read_small(self, relative: str) -> bytes:
        loc = self.manifest.location(relative)
        if self.manifest.remote:
            with self._cache().fs.open_input_stream(s3_path(loc)) as f:
                return bytes(f.read())
        return Path(loc).read_bytes()

    def index(self, shard: int) -> np.ndarray:
        """Shard ``shard``'s index as int64 ``[n_samples, 4]`` (see loader_verify.load_index), checked
        against the manifest's index_sha256 and sample/token counts."""
        got = self._indexes.get(shard)
        if got is not None:
            self._indexes.move_to_end(shard)
            return got
        m = self.manifest
        name = m.location(m.paths[shard])
        data = self._read_small(m.index_paths[shard])
        if self.verify and hashlib.sha256(data).hexdigest() != m.index_sha256[shard]:
            raise CorruptShardError(name, "index checksum does not match the manifest")
        try:
            idx = load_index(data)
        except ValueError as exc:
            raise CorruptShardError(name, f"unreadable index ({exc})") from exc
        if len(idx) != m.n_samples[shard] or int(idx[:, 1].sum()) != m.n_tokens[shard]:
            raise CorruptShardError(name, "index sample or token counts disagree with the manifest")
        self._indexes[shard] = idx
        while len(self._indexes) > _OPEN_SHARDS:
            self._indexes.popitem(last=False)
        return idx

    def prefetch(self, shards: list[int]) -> None:
        """Start fetching remote shards ahead of use (no-op for local datasets)."""
        if self.cache is None or not shards:
            return
        m = self.manifest
        self._cache().prefetch((s3_path(m.location(m.paths[s])), int(m.nbytes[s])) for s in shards)

    def tokens_many(self, shards: list[int]) -> list[np.ndarray | None]:
        """:meth:`tokens` of several shards; the checksums of those not yet verified are computed in
        parallel threads first (hashing releases the GIL), which shortens the wait for a first batch."""
        todo = [s for s in shards if self.verify and s not in self._maps and s not in self._verified]
        if len(todo) > 1 and self.cache is None:  # remote shards: the cache's threads fetch ahead
            m = self.manifest

            def digest(shard: int) -> tuple[int, str | None]:
                try:
                    return shard, sha256_file(self._local_file(shard, m.location(m.paths[shard]))[0])
                except (OSError, CorruptShardError):
                    return shard, None  # tokens() below reports it

            with ThreadPoolExecutor(min(len(todo), os.cpu_count() or 1, 8)) as pool:
                for shard, hexdigest in pool.map(digest, todo):
                    if hexdigest is not None:
                        self._digests[shard] = hexdigest
        return [self.tokens(s) for s in shards]

    def tokens(self, shard: int) -> np.ndarray | None:
        """Shard ``shard``'s bytes as a uint8 memory map, verified on first use; None if skipped."""
        if shard in self._maps:
            self._maps.move_to_end(shard)
            return self._maps[shard]
        m = self.manifest
        name = m.location(m.paths[shard])
        # release before fetching: the shards held open plus the new one stay within keep_open, so a remote
        # cache never has to keep more pinned files than the loader sized it for
        while len(self._maps) >= self.keep_open:
            old, _ = self._maps.popitem(last=False)
            if self.cache is not None:
                self.cache.release(s3_path(m.location(m.paths[old])))
        buf: np.ndarray | None
        try:
            buf = self._open_verified(shard, name)
        except CorruptShardError:
            if self.on_corrupt == "raise":
                raise
            if shard not in self._bad:
                log.warning("skipping corrupt shard %s: its documents are masked out of the stream", name)
                self._bad.add(shard)
            buf = None
        self._maps[shard] = buf
        return buf

    def _local_file(self, shard: int, name: str) -> tuple[Path, int]:
        """Local path and size of a shard, fetching it through the cache when remote. Another process
        sharing the cache may evict a file between fetch and open: fetch again, a few times."""
        for _ in range(3):
            path = (
                Path(name)
                if self.cache is None
                else self._cache().get(s3_path(name), int(self.manifest.nbytes[shard]))
            )
            try:
                return path, path.stat().st_size
            except FileNotFoundError:
                if self.cache is None:
                    break
        raise CorruptShardError(name, "file is missing")

    def _open_verified(self, shard: int, name: str) -> np.ndarray:
        m = self.manifest
        path, size = self._local_file(shard, name)
        if size != m.nbytes[shard]:
            raise CorruptShardError(name, f"{size} bytes, the manifest says {int(m.nbytes[shard])}")
        if self.verify and shard not in self._verified:
            digest = self._digests.pop(shard, None) or sha256_file(path)
            if digest != m.sha256[shard]:
                raise CorruptShardError(name, "sha256 does not match the manifest")
        # a plain ndarray view of the map: slicing a np.memmap subclass costs more per document
        buf = np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray)
        if self.verify and shard not in self._verified:
            problem = check_tar_layout(buf, self.index(shard), m.token_dtype.itemsize)
            if problem is not None:
                raise CorruptShardError(name, problem)
            self._verified.add(shard)
        return buf

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        self._reset()
