"""A bounded local cache of remote shards: LRU by size, background prefetch, safe across processes.

Several processes (ranks on a node, DataLoader workers) may share one cache folder. A per-file lock
makes only one of them download a given shard; downloads land in a temporary name and are renamed
into place, so a reader never sees a partial file. Eviction removes the least recently used files
(by mtime, which every hit refreshes) until the new file fits. Removing a file another process has
mapped is safe on POSIX: its pages stay valid until it is unmapped.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_COPY_CHUNK = 8 * 1024 * 1024


class ShardCache:
    """Local copies of remote files under ``root``, at most ``max_bytes`` in total.

    ``filesystem`` is a pyarrow FileSystem and remote paths are in its form (``bucket/key``).
    :meth:`get` blocks until the file is local and returns its path; :meth:`prefetch` starts
    fetches in background threads. Raises ValueError when a file is larger than ``max_bytes``,
    and OSError when a download fails or returns a size other than the one expected.
    """

    def __init__(self, root: str | Path, *, max_bytes: int, filesystem: Any, threads: int = 2) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        if threads <= 0:
            raise ValueError(f"threads must be > 0, got {threads}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.fs = filesystem
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[str, Future[Path]] = {}
        self._lock = threading.Lock()
        self._in_use: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get their own pool and bookkeeping; the folder is shared.
        state = self.__dict__.copy()
        state.update(_pool=None, _pending={}, _lock=None, _in_use=set())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def local_path(self, remote: str) -> Path:
        digest = hashlib.sha1(remote.encode()).hexdigest()[:16]
        return self.root / f"{digest}-{Path(remote).name}"

    def get(self, remote: str, nbytes: int) -> Path:
        """Local path of ``remote`` (``nbytes`` long), downloading it first if it is not cached. The
        file stays exempt from this process's evictions until :meth:`release`."""
        with self._lock:
            self._in_use.add(self.local_path(remote).name)  # before the fetch: no eviction in between
            pending = self._pending.pop(remote, None)
        if pending is not None:
            try:
                pending.result()
            except OSError as exc:
                log.warning("prefetch of %s failed (%s); fetching again", remote, exc)
        return self._fetch(remote, nbytes)  # returns at once when the file is in place

    def release(self, remote: str) -> None:
        """Let ``remote``'s local copy be evicted again by this process."""
        with self._lock:
            self._in_use.discard(self.local_path(remote).name)

    def prefetch(self, items: Iterable[tuple[str, int]]) -> None:
        """Start fetching ``(remote, nbytes)`` items in the background (no-op for ones under way)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="shard-prefetch")
            for remote, nbytes in items:
                if remote not in self._pending:
                    self._pending[remote] = self._pool.submit(self._fetch, remote, nbytes)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def cached_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._entries())

    def _entries(self) -> list[Path]:
        return [p for p in self.root.iterdir() if p.is_file() and not p.name.endswith((".part", ".lock"))]

    def _fetch(self, remote: str, nbytes: int) -> Path:
        if nbytes > self.max_bytes:
            raise ValueError(f"{remote} is {nbytes} bytes, more than the cache limit {self.max_bytes}")
        path = self.local_path(remote)
        with open(path.with_name(path.name + ".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if path.exists() and path.stat().st_size == nbytes:
                    os.utime(path)
                    return path
                tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
                self._reserve(tmp, nbytes)
                try:
                    got = 0
                    with self.fs.open_input_stream(remote) as src, open(tmp, "r+b") as dst:
                        while chunk := src.read(_COPY_CHUNK):
                            dst.write(chunk)
                            got += len(chunk)
                        dst.truncate(got)
                    if got != nbytes:
                        raise OSError(f"{remote}: fetched {got} bytes, the manifest says {nbytes}")
                    self._publish(tmp, path)
                finally:
                    tmp.unlink(missing_ok=True)
                log.debug("cached %s (%d bytes)", remote, nbytes)
                return path
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _cache_lock(self) -> Any:
        return open(self.root / ".cache.lock", "a+b")

    def _publish(self, tmp: Path, path: Path) -> None:
        """Rename a finished download into place under the cache-wide lock: an eviction pass listing
        the folder meanwhile would otherwise see neither the temporary name nor the final one, count
        the file as nothing and let the cache grow past its limit."""
        with self._cache_lock() as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                os.replace(tmp, path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _reserve(self, tmp: Path, nbytes: int) -> None:
        """Under the cache-wide lock, evict until ``nbytes`` fit (downloads under way count at their
        full size), then claim the space with a sparse file of that size."""
        with self._cache_lock() as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._evict(nbytes)
                with open(tmp, "wb") as f:
                    f.truncate(nbytes)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _evict(self, incoming: int) -> None:
        entries, total = [], 0
        for p in self.root.iterdir():
            if p.name.endswith(".lock"):
                continue
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            total += st.st_size
            if not p.name.endswith(".part"):
                entries.append((st.st_mtime_ns, st.st_size, p))
        entries.sort()
        for _, size, p in entries:
            if total + incoming <= self.max_bytes:
                break
            with self._lock:
                busy = p.name in self._in_use
            if busy:
                continue
            p.unlink(missing_ok=True)
            total -= size
            log.debug("evicted %s (%d bytes)", p.name, size)
        if total + incoming > self.max_bytes:
            log.warning(
                "shard cache %s: %d bytes in use or under way; exceeding its %d byte limit",
                self.root,
                total,
                self.max_bytes,
            )
