"""Access to one dataset's shards: indexes, verified token bytes, local or fetched through the cache."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipelines.storage import filesystem
from sharding.errors import CorruptShardError
from sharding.format import index_matrix, read_index
from sharding.loader.cache import ShardCache
from sharding.loader.manifest import RemoteOptions, ShardManifest, s3_path
from sharding.loader.verify import check_tar_layout, check_token_ids

log = logging.getLogger(__name__)

OnCorrupt = Literal["raise", "skip"]
_OPEN_SHARDS = 16  # memory maps kept open per process


def checksum(path: Path, buf: np.ndarray) -> str:
    """Hex sha256 of a shard's mapped bytes (``path`` names the file they were mapped from)."""
    return hashlib.sha256(buf.data).hexdigest()


class ShardChecks:
    """Verdicts of the checks on one manifest's shards, shared by the stores of a process's producer
    threads so that each shard is checked once: a thread that needs a shard another thread is
    checking waits for that check. A verdict is None (the shard passed) or why it is corrupt.
    :meth:`ahead` checks shards in a background thread before they are needed. Not picklable on
    purpose: a store unpickled in another process starts its own (ShardStore.__setstate__)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._verdicts: dict[int, Future[str | None]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._warned: set[int] = set()  # skipped shards already named in a warning

    def verdict(self, shard: int, run: Callable[[], str | None]) -> str | None:
        """``shard``'s verdict, from ``run()`` the first time it is asked for. An exception from ``run``
        (an unreadable file, a corrupt index) is raised to the caller whose call ran it and is not
        kept: the next caller runs the check again."""
        with self._lock:
            fut = self._verdicts.get(shard)
            mine = fut is None
            if fut is None:
                fut = self._verdicts[shard] = Future()
        if not mine:
            return fut.result()
        try:
            got = run()
        except BaseException as exc:
            with self._lock:
                self._verdicts.pop(shard, None)
            fut.set_exception(exc)  # threads waiting on this check raise it too
            raise
        fut.set_result(got)
        return got

    def first_warning(self, shard: int) -> bool:
        """True the first time it is asked for ``shard`` (by any thread sharing these checks)."""
        with self._lock:
            first = shard not in self._warned
            self._warned.add(shard)
        return first

    def known(self, shard: int) -> bool:
        with self._lock:
            return shard in self._verdicts

    def ahead(self, shard: int, run: Callable[[], str | None]) -> None:
        """Start ``shard``'s check in the background unless it is done or under way."""
        with self._lock:
            if shard in self._verdicts:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="shard-verify")
            pool = self._pool
        pool.submit(self._quietly, shard, run)

    def _quietly(self, shard: int, run: Callable[[], str | None]) -> None:
        try:
            self.verdict(shard, run)
        except Exception:  # noqa: BLE001  (not kept: the store's own call checks again and reports it)
            log.debug("background check of shard %d failed", shard, exc_info=True)

    def close(self) -> None:
        """Stop background checks and forget every verdict: shards are checked again on next use (by
        every store sharing these checks, still once per shard)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._verdicts.clear()
            self._warned.clear()


class ShardStore:
    """Shards of one manifest as numpy views, each verified (sha256 and tar layout) before first use.

    ``tokens(i)`` returns the shard's bytes as a read-only uint8 memory map, or None when the shard
    is corrupt and ``on_corrupt="skip"`` (a warning names it once per process); with
    ``on_corrupt="raise"`` a corrupt shard raises CorruptShardError naming it. A corrupt *index*
    always raises, since the stream's layout depends on it. Picklable: open maps and the cache's
    threads are per process. Stores that read the same manifest in one process can share their
    :class:`ShardChecks` (:meth:`share_checks`), so each shard's checksum is computed once.
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
        # remote shards fetched ahead of use (RemoteOptions.prefetch_shards, or fewer when the cache is small)
        if manifest.remote:
            root = self.remote.cache_dir or str(
                Path(tempfile.gettempdir())
                / "tokenmill-shard-cache"
                / hashlib.sha1(manifest.base.encode()).hexdigest()[:12]
            )
            self.cache = ShardCache(root, max_bytes=self.remote.cache_limit_bytes, filesystem=None)
        self.prefetch_limit = self.remote.prefetch_shards if self.cache is not None else None
        self.checks = ShardChecks()
        self._reset()

    def _reset(self) -> None:
        self._maps: OrderedDict[int, np.ndarray | None] = OrderedDict()
        self._indexes: OrderedDict[int, np.ndarray] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_maps", "_indexes", "checks"):
            state.pop(key)
        return state

    def share_checks(self, other: ShardStore) -> None:
        """Use ``other``'s verdicts from now on (both stores must read the same manifest)."""
        if other.manifest.base != self.manifest.base or other.manifest.sha256 != self.manifest.sha256:
            raise ValueError("stores of different manifests cannot share their checks")
        self.checks = other.checks

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.checks = ShardChecks()
        self._reset()

    def _cache(self) -> ShardCache:
        assert self.cache is not None
        if self.cache.fs is None:
            self.cache.fs = filesystem(self.manifest.base, self.remote)[0]
        return self.cache

    def _read_small(self, relative: str) -> bytes:
        loc = self.manifest.location(relative)
        if self.manifest.remote:
            with self._cache().fs.open_input_stream(s3_path(loc)) as f:
                return bytes(f.read())
        return Path(loc).read_bytes()

    def index(self, shard: int) -> np.ndarray:
        """Shard ``shard``'s index as int64 ``[n_samples, 4]`` (sharding.format.index_matrix), checked
        against the manifest's index_sha256 and sample/token counts."""
        got = self._indexes.get(shard)
        if got is not None:
            self._indexes.move_to_end(shard)
            return got
        idx = self._load_index(shard)
        self._indexes[shard] = idx
        while len(self._indexes) > _OPEN_SHARDS:
            self._indexes.popitem(last=False)
        return idx

    def _load_index(self, shard: int) -> np.ndarray:
        """:meth:`index` without the cache (safe from any thread)."""
        m = self.manifest
        name = m.location(m.paths[shard])
        data = self._read_small(m.index_paths[shard])
        if self.verify and hashlib.sha256(data).hexdigest() != m.index_sha256[shard]:
            raise CorruptShardError(name, "index checksum does not match the manifest")
        try:
            idx = index_matrix(read_index(data))
        except ValueError as exc:
            raise CorruptShardError(name, f"unreadable index ({exc})") from exc
        if len(idx) != m.n_samples[shard] or int(idx[:, 1].sum()) != m.n_tokens[shard]:
            raise CorruptShardError(name, "index sample or token counts disagree with the manifest")
        return idx

    def prefetch(self, shards: list[int]) -> None:
        """Get shards ready ahead of use: remote ones start downloading; local ones are checked in a
        background thread (when ``verify``), so a producer seldom waits on a checksum."""
        if not shards:
            return
        m = self.manifest
        if self.cache is not None:
            ahead = shards[: self.prefetch_limit]  # what the cache holds beside the shards in use
            if ahead:
                self._cache().prefetch((s3_path(m.location(m.paths[s])), int(m.nbytes[s])) for s in ahead)
        elif self.verify:
            for s in shards:
                self.checks.ahead(s, functools.partial(self._verdict, s))

    def tokens_many(self, shards: list[int]) -> list[np.ndarray | None]:
        """:meth:`tokens` of several shards; local shards not checked yet are checked in parallel
        threads first (hashing releases the GIL), which shortens the wait for a first batch."""
        todo = [s for s in shards if self.verify and s not in self._maps and not self.checks.known(s)]
        if len(todo) > 1 and self.cache is None:  # remote shards: the cache's threads fetch ahead

            def check(shard: int) -> None:
                try:
                    self.checks.verdict(shard, lambda: self._verdict(shard))
                except (OSError, CorruptShardError):
                    pass  # tokens() below checks again and reports it

            with ThreadPoolExecutor(min(len(todo), os.cpu_count() or 1, 8)) as pool:
                list(pool.map(check, todo))
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
            if self.checks.first_warning(shard):
                log.warning("skipping corrupt shard %s: its documents are masked out of the stream", name)
            buf = None
        self._maps[shard] = buf
        return buf

    def _mapped(self, shard: int, name: str) -> tuple[Path, np.ndarray]:
        """The shard's bytes, mapped read-only (fetched through the cache when remote). Another process
        sharing the cache may evict the file between fetch and open: fetch again, a few times. Once the
        file is open and mapped, an eviction no longer matters (POSIX keeps the pages of a removed file)."""
        for _ in range(3):
            path = (
                Path(name)
                if self.cache is None
                else self._cache().get(s3_path(name), int(self.manifest.nbytes[shard]))
            )
            try:
                with open(path, "rb") as f:
                    if os.fstat(f.fileno()).st_size == 0:  # mmap refuses an empty file
                        return path, np.zeros(0, dtype=np.uint8)
                    # a plain ndarray view of the map: slicing a np.memmap subclass costs more per document
                    return path, np.memmap(f, dtype=np.uint8, mode="r").view(np.ndarray)
            except FileNotFoundError:
                if self.cache is None:
                    break
        raise CorruptShardError(name, "file is missing")

    def _open_verified(self, shard: int, name: str) -> np.ndarray:
        m = self.manifest
        if self.verify:
            problem = self.checks.verdict(shard, lambda: self._verdict(shard))
            if problem is not None:
                raise CorruptShardError(name, problem)
        _, buf = self._mapped(shard, name)
        if buf.size != m.nbytes[shard]:
            raise CorruptShardError(name, f"{buf.size} bytes, the manifest says {int(m.nbytes[shard])}")
        return buf

    def _verdict(self, shard: int) -> str | None:
        """Check shard ``shard`` (size, sha256, tar layout against its index): None when it passes,
        otherwise why it is corrupt. Raises CorruptShardError for a corrupt index, OSError when the
        file cannot be read. Touches no state of the store, so any thread may run it."""
        m = self.manifest
        path, buf = self._mapped(shard, m.location(m.paths[shard]))
        if buf.size != m.nbytes[shard]:
            return f"{buf.size} bytes, the manifest says {int(m.nbytes[shard])}"
        if checksum(path, buf) != m.sha256[shard]:
            return "sha256 does not match the manifest"
        index = self._load_index(shard)
        return (check_tar_layout(buf, index, m.token_dtype.itemsize)
                or check_token_ids(buf, index, m.token_dtype, m.vocab_size))

    def close(self) -> None:
        self.checks.close()
        if self.cache is not None:
            self.cache.close()
        self._reset()
