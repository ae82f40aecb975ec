"""The torch side of the loader: DataLoader workers, a prefetch thread, and the device copy ring.

Imported only when a TokenLoader is iterated, so ``import sharding`` does not need torch.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from torch.utils.data._utils.fetch import _IterableDatasetFetcher

from sharding.loader import kernels
from sharding.loader.batcher import HostBatcher
from sharding.loader.shuffle import worker_steps

log = logging.getLogger(__name__)

Batch = dict[str, Any]

IN_WORKER = (
    "TokenLoader cannot run inside DataLoader worker processes (each would read this rank's whole stream): "
    "iterate the loader itself and pass num_workers=N to TokenLoader"
)
AUTO_BATCHED = (
    "DataLoader(TokenLoader(...)) needs batch_size=None: the loader already yields whole batches of "
    "batch_size rows (or iterate the loader itself)"
)


def check_dataloader_use(caller: FrameType | None) -> None:
    """Refuse, with one line, the two ways a torch DataLoader would break a TokenLoader's guarantees:
    iterating it in DataLoader worker processes (every worker would yield the same steps), and
    DataLoader auto-batching (``batch_size`` not None), which would stack whole batches into
    ``[1, batch_size, seq_len]``. ``caller`` is the frame that called ``iter(loader)``; a DataLoader's
    fetcher (torch's private ``_IterableDatasetFetcher``, looked up by type, so a torch without it
    only skips this check) records whether it auto-batches."""
    if get_worker_info() is not None:
        raise RuntimeError(IN_WORKER)
    fetcher = None if caller is None else caller.f_locals.get("self")
    if isinstance(fetcher, _IterableDatasetFetcher) and fetcher.auto_collation:
        raise ValueError(AUTO_BATCHED)


class StepDataset(IterableDataset):
    """Global steps ``[first, stop)`` of one rank; DataLoader worker ``w`` of ``n`` makes every
    ``n``-th step from ``first + w``, so the DataLoader's in-order round robin yields step order."""

    def __init__(self, batcher: HostBatcher, first: int, stop: int) -> None:
        self.batcher = batcher
        self.first = first
        self.stop = stop

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, n = (0, 1) if info is None else (info.id, info.num_workers)
        for step in worker_steps(self.first, self.stop, worker=worker, num_workers=n):
            yield self.batcher.batch(step)


def worker_batches(batcher: HostBatcher, first: int, stop: int, num_workers: int) -> Iterator[Batch]:
    """Batches for steps ``[first, stop)`` made by ``num_workers`` DataLoader worker processes."""
    # fork starts fast, but a process that has initialised CUDA must not fork
    context = "spawn" if torch.cuda.is_initialized() else "fork"
    if context == "fork":
        # a forked worker must not inherit a half-done numba import or a held compiler lock from the
        # kernel-loading thread; waiting here also hands the workers loaded kernels
        kernels.kernels()
    loader = DataLoader(
        StepDataset(batcher, first, stop),
        batch_size=None,
        num_workers=num_workers,
        prefetch_factor=2,
        persistent_workers=False,
        multiprocessing_context=context,
    )
    return iter(loader)


Threads = list[threading.Thread]  # where an iteration records the threads it starts (see wait_for)


def _producer(make: Callable[[], Iterator[Any]], q: queue.Queue[tuple[str, Any]], stop: threading.Event,
              name: str, started: Threads | None) -> threading.Thread:
    """Start a daemon thread that puts ``("item", x)`` for each item of ``make()``, then ``("end", None)``,
    or ``("error", exc)`` when ``make`` raises; it gives up as soon as ``stop`` is set. The thread is
    appended to ``started`` when given."""

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in make():
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(("error", exc))

    thread = threading.Thread(target=run, name=name, daemon=True)
    if started is not None:
        started.append(thread)
    thread.start()
    return thread


def _take(q: queue.Queue[tuple[str, Any]]) -> tuple[bool, Any]:
    """The next message a :func:`_producer` thread put: ``(True, item)``, or ``(False, None)`` at its end;
    an error it caught is raised here, in the consumer."""
    kind, value = q.get()
    if kind == "error":
        raise value
    return kind == "item", value


def _join(threads: Threads) -> None:
    """Give stopped threads a moment to exit. The wait is short and bounded: a generator may be
    finalised by the garbage collector in one of its own threads, or while the collecting thread holds
    a lock those threads need, so it must not block on them; they exit on their own once they see the
    stop flag. Where no thread may outlive an iteration, the owner calls :func:`wait_for`."""
    me = threading.current_thread()
    for t in threads:
        if t is not me:
            t.join(timeout=0.5)


def wait_for(threads: Threads) -> None:
    """Wait until every thread in ``threads`` (an iteration's, stopped) has exited, warning every 10 s
    while one is still in a slow read: they pack on the batcher the next iteration uses."""
    me = threading.current_thread()
    for t in threads:
        waited = 0
        while t is not me and t.is_alive():
            t.join(timeout=10)
            if t.is_alive():
                waited += 10
                log.warning("waiting %d s for loader thread %s to finish its current read", waited, t.name)


def threaded(
    make: Callable[[], Iterator[Any]], depth: int, started: Threads | None = None
) -> Generator[Any, None, None]:
    """Run ``make()`` in a background thread, ``depth`` items ahead of the consumer. Errors are
    re-raised in the consumer; closing the generator stops the thread."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    thread = _producer(make, q, stop, "token-loader-prefetch", started)
    try:
        while True:
            more, value = _take(q)
            if not more:
                return
            yield value
    finally:
        stop.set()
        _join([thread])


def interleaved(
    makers: list[Callable[[], Iterator[Any]]], depth: int, started: Threads | None = None
) -> Generator[Any, None, None]:
    """Run each ``makers[i]()`` in its own background thread and yield their items in turns: items
    of maker 0 up to its first ``None`` (a chunk's end), then maker 1's up to its first ``None``, and
    so on round the list; it ends when the maker whose turn it is has ended. Each thread runs at most
    ``depth`` chunks ahead. Errors are re-raised in the consumer at their turn; closing the generator
    stops and joins every thread."""
    if not makers:
        raise ValueError("makers is empty")
    stop = threading.Event()
    queues: list[queue.Queue[tuple[str, Any]]] = [queue.Queue(maxsize=max(1, depth) + 1) for _ in makers]
    threads = [_producer(m, q, stop, f"token-loader-pack-{i}", started)
               for i, (m, q) in enumerate(zip(makers, queues, strict=True))]
    try:
        turn = 0
        while True:
            more, value = _take(queues[turn])
            if not more:
                return
            if value is None:
                turn = (turn + 1) % len(queues)
            else:
                yield value
    finally:
        stop.set()
        _join(threads)


def as_tensors(batch: Batch) -> Batch:
    """numpy arrays -> CPU tensors sharing their memory; other values pass through."""
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


class CudaRing:
    """Copies host batches to a CUDA device on a dedicated copy stream, ahead of the consumer.

    :meth:`stage` runs in the prefetch thread: each batch goes host -> pinned slot (one of
    ``slots`` reused pinned buffers) -> device with non-blocking copies on the copy stream, then an
    event is recorded. :meth:`hand_out` runs in the consumer's thread: its current stream waits on
    the event (no host block) and the tensors are recorded on that stream, so the caching allocator
    does not reuse them early. A pinned slot is refilled only after its previous copy has completed.
    """

    def __init__(self, device: torch.device, slots: int) -> None:
        if slots <= 0:
            raise ValueError(f"slots must be > 0, got {slots}")
        self.device = device
        self.stream = torch.cuda.Stream(device=device)
        self.slots: list[dict[str, torch.Tensor]] = [{} for _ in range(slots)]
        self.events: list[torch.cuda.Event | None] = [None] * slots

    def _pinned(self, slot: int, key: str, t: torch.Tensor, capacity: int) -> torch.Tensor:
        buf = self.slots[slot].get(key)
        if buf is None or buf.numel() < t.numel() or buf.dtype != t.dtype:
            # pinned allocation is slow and synchronising: size variable-length tensors for the worst case
            buf = torch.empty(max(t.numel(), capacity), dtype=t.dtype, pin_memory=True)
            self.slots[slot][key] = buf
        view = buf[: t.numel()].view(t.shape)
        view.copy_(t)
        return view

    def stage(self, host: Iterator[Batch]) -> Iterator[tuple[Batch, torch.cuda.Event]]:
        """Device copies of ``host``'s batches, each with the event that marks its copy done."""
        slot = 0
        with torch.cuda.device(self.device):
            for batch in host:
                ev = self.events[slot]
                if ev is not None:
                    ev.synchronize()
                tensors = {k: v for k, v in as_tensors(batch).items() if isinstance(v, torch.Tensor)}
                capacity = max(v.numel() for v in tensors.values()) + 1
                staged = {k: self._pinned(slot, k, v, capacity) for k, v in tensors.items()}
                out: Batch = {}
                with torch.cuda.stream(self.stream):
                    for k, v in batch.items():
                        out[k] = staged[k].to(self.device, non_blocking=True) if k in staged else v
                    done = torch.cuda.Event()
                    done.record(self.stream)
                self.events[slot] = done
                slot = (slot + 1) % len(self.slots)
                yield out, done

    def hand_out(self, batch: Batch, done: torch.cuda.Event) -> Batch:
        current = torch.cuda.current_stream(self.device)
        current.wait_event(done)
        for v in batch.values():
            if isinstance(v, torch.Tensor):
                v.record_stream(current)
        return batch


def device_batches(
    make_host: Callable[[], Iterator[list[Batch]]],
    device: torch.device | None,
    depth: int,
    *,
    background: bool,
    in_flight: int = 4,
    started: Threads | None = None,
) -> Generator[Batch, None, None]:
    """Batches from ``make_host()`` (lists of host batches, in order) as tensors: CPU tensors when
    ``device`` is None or CPU (made in a prefetch thread ``depth`` lists ahead when ``background``);
    on CUDA, staged through a :class:`CudaRing` in a second thread, ``in_flight`` batches ahead;
    other devices by a plain ``.to(device)``. Threads started are appended to ``started``."""

    def host_tensors() -> Iterator[list[Batch]]:
        # the zero-copy tensor wrapping runs in the prefetch thread, off the consumer's path
        return ([as_tensors(b) for b in chunk] for chunk in make_host())

    if device is not None and device.type == "cuda":
        ring = CudaRing(device, slots=in_flight + 2)  # queued batches, one being handed out, one being staged
        # two threads: making batches and staging copies overlap instead of taking turns
        chunks = (lambda: threaded(host_tensors, depth, started)) if background else host_tensors

        def flat() -> Iterator[Batch]:
            return (b for chunk in chunks() for b in chunk)

        staged = threaded(lambda: ring.stage(flat()), in_flight, started)
        try:
            for out, done in staged:
                yield ring.hand_out(out, done)
        finally:
            staged.close()
        return
    host = threaded(host_tensors, depth, started) if background else host_tensors()
    try:
        for chunk in host:
            for t in chunk:
                if device is not None and device.type != "cpu":
                    t = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
                yield t
    finally:
        host.close()  # type: ignore[union-attr]  # stops the prefetch thread
