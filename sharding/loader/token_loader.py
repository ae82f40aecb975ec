"""TokenLoader: deterministic, resumable, topology-independent streaming of packed token windows.

The global sequence of windows (``seq_len + 1`` tokens each) is a pure function of (sources,
weights, seed, seq_len, eras): each global step takes the next ``batch_size * world_size`` of them,
and rank ``r`` reads the ``r``-th run of ``batch_size``. Ranks therefore see disjoint data and the
same number of steps by construction (no collective at an epoch's end), and the state of a loader
is a few integers, chiefly the number of windows served: it resumes exactly on any topology and at
any global batch (ramp-up, fewer nodes), and on a later manifest of a growing dataset (see
sharding.loader.eras: the epochs begun keep their shards, the new ones join at the next epoch).
"""

from __future__ import annotations

import logging
import pickle
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sharding.loader import follow as follow_
from sharding.loader.batcher import HostBatcher, LoaderPlan
from sharding.loader.fields import FIELDS
from sharding.loader.manifest import RemoteOptions, ShardManifest, read_manifest
from sharding.loader.options import LoaderOptions, with_num_workers
from sharding.loader.shuffle import normalize_weights
from sharding.loader.sources import Source, resolve, sources, token_weights, topology
from sharding.loader.state import (
    Position,
    check_position,
    eras_of_state,
    moved_plan,
    position_after,
    v1_position,
)
from sharding.loader.store import OnCorrupt

if TYPE_CHECKING:  # at run time TokenLoader is registered as one (see _register_iterable_dataset)
    from torch.utils.data import IterableDataset as _DatasetBase
else:
    _DatasetBase = object

log = logging.getLogger(__name__)

STATE_VERSION = 2
MARKS_KEPT = 16  # state_dict(after_step=...) reaches back to the start of the 16th-last epoch


def _register_iterable_dataset() -> None:
    """Make TokenLoader an ``IterableDataset`` for torch's DataLoader, which tells iterable datasets
    from map-style ones by isinstance (a map-style view would index the loader and fail)."""
    try:
        from torch.utils.data import IterableDataset
    except ImportError:  # the writer side runs without torch
        return
    if not issubclass(TokenLoader, IterableDataset):
        IterableDataset.register(TokenLoader)


class TokenLoader(_DatasetBase):
    """Iterate packed token batches from one or more shard manifests.

    With torch installed, a TokenLoader is a ``torch.utils.data.IterableDataset`` (registered as a
    virtual subclass when the first one is made, so importing this module does not import torch):
    ``DataLoader(loader, batch_size=None)`` hands its batches on unchanged, with ``num_workers=0``.
    DataLoader workers or auto-batching raise a one-line error saying what to do instead
    (sharding.loader.torch_glue.check_dataloader_use); pass ``num_workers`` to the loader itself.

    ``source``: a manifest path or folder, an s3:// URI, a dataset-version name (given to
    ``resolver``, which returns a manifest path/URI), a list of them (mixed in proportion to their
    tokens) or a dict ``{source: weight}``. ``batch_size`` is per rank; rank and world size come
    from torch.distributed when not given (0 and 1 without it). Each item is a dict of
    ``input_ids``, ``labels``, ``position_ids`` (int64 ``[batch_size, seq_len]``), ``cu_seqlens``
    (int32), ``max_seqlen`` and ``step`` (the global step number), as CPU tensors or on ``device``
    (the fields' table: sharding.loader.fields).
    ``fields`` picks the outputs to compute, among ``input_ids`` (always), ``labels``,
    ``position_ids`` and ``cu_seqlens`` (with ``max_seqlen``): a model that shifts its labels itself
    and attends across documents needs ``("input_ids",)``, a third of the memory traffic. It does
    not change which tokens a batch holds, so a state saved with some fields resumes with others.

    One ``for`` loop runs to the end of the current epoch (``len(loader)`` steps); stopping early
    and iterating again continues where it stopped. ``state_dict()`` / ``load_state_dict()`` give
    bit-identical continuation, also onto a different world size with the same global batch; at
    another global batch the remaining windows are exactly those not served yet; on a manifest that
    extends the saved one, the current epoch finishes on the saved shards and the new ones join at
    the next. ``follow=True`` re-reads the sources at each epoch's start and moves onto a manifest
    that extends them in the same way, every rank at the same step (sharding.loader.follow).
    ``on_corrupt="skip"`` masks a corrupt shard's documents (EOD filler, labels ignored) instead
    of raising, which keeps every rank's layout identical.

    ``options`` (sharding.loader.options.LoaderOptions) holds what never changes a batch: DataLoader
    worker processes, producer threads, prefetch depth and shard verification; ``num_workers=N`` is
    shorthand for ``options=LoaderOptions(num_workers=N)``.

    Batches are packed several steps at a time by a fused numba kernel (sharding.loader.gather);
    without workers, ``options.producers`` threads (each on its own copy of the batcher) pack alternate
    chunks and the batches are handed out in step order (remote sources use one producer). Until
    the kernel has loaded (in a background thread started once the first batch is made, see
    sharding.loader.kernels) they come one at a time from the numpy path, which gives the same
    batches. A yielded batch's CPU tensors keep their memory for as long as any
    reference to them (or a view, or a numpy array of them) is held; memory that nothing refers
    to any more is reused for later batches (sharding.loader.buffers), so copy a tensor before
    handing only its address (``data_ptr()``) to code that outlives the tensor.
    """

    def __init__(
        self,
        source: Source,
        *,
        seq_len: int,
        batch_size: int,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        num_workers: int | None = None,
        device: Any = None,
        resolver: Callable[[str], str] | None = None,
        steps_per_epoch: int | None = None,
        block_shards: int = 4,
        on_corrupt: OnCorrupt = "raise",
        remote: RemoteOptions | None = None,
        mask_cross_document: bool = True,
        fields: Sequence[str] = FIELDS,
        follow: bool = False,
        options: LoaderOptions | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.options = with_num_workers(options, num_workers)
        rank, world_size = topology(rank, world_size)
        if follow:
            follow_.check_follow_topology(world_size)
        names, weights = sources(source)
        self._names, self._resolver, self._remote = names, resolver, remote
        self.follow = follow
        manifests = [read_manifest(resolve(n, resolver), remote) for n in names]
        counts = [m.n_shards for m in manifests]
        if follow:
            counts = follow_.agree_min(counts)
        eras = tuple(((0, c),) for c in counts)
        self._explicit_weights = weights is not None
        plan = LoaderPlan.build(
            manifests,
            weights if weights is not None else token_weights(manifests, eras),
            seq_len=seq_len,
            global_batch=batch_size * world_size,
            seed=seed,
            block_shards=block_shards,
            steps_per_epoch=steps_per_epoch,
            eras=eras,
        )
        self._batcher_kw: dict[str, Any] = dict(
            verify=self.options.verify,
            on_corrupt=on_corrupt,
            remote=remote,
            mask_cross_document=mask_cross_document,
            fields=tuple(fields),
        )
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self.device = device
        # the position: windows served so far, and where the current epoch's windows end
        self.epoch = 0
        self.step = 0
        self.global_step = 0
        self.windows = 0
        self.epoch_end = plan.epoch_windows(0)
        # positions where the recent epochs began (or the last load), for state_dict(after_step=...)
        self._marks: deque[Position] = deque(maxlen=MARKS_KEPT)
        self._followed = 0  # the epoch whose start last re-read the sources (construction read epoch 0's)
        self._twins: list[HostBatcher] = []  # batchers of producer threads 1.. (see _producer)
        self._install(plan)
        self._mark()
        self._active: Iterator[dict[str, Any]] | None = None
        self._threads: list[Any] = []  # threads the current iteration started (see _end_active)
        _register_iterable_dataset()

    def _install(self, plan: LoaderPlan) -> None:
        """Read through ``plan`` from now on (a new batcher; the old ones are closed)."""
        old: HostBatcher | None = getattr(self, "batcher", None)
        if old is not None:
            old.close()
        for twin in self._twins:
            twin.close()
        self._twins = []
        self.plan = plan
        self.batcher = HostBatcher(plan, rank=self.rank, world_size=self.world_size, **self._batcher_kw)
        self.batcher.window_offset = self.windows - self.global_step * plan.global_batch
        self._hash = plan.config_hash()

    def __len__(self) -> int:
        """Steps of the current epoch, those already served included."""
        return self.step + (self.epoch_end - self.windows) // self.plan.global_batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from sharding.loader import torch_glue as lt

        lt.check_dataloader_use(sys._getframe(1))
        # one live iteration at a time: its prefetch thread or workers hold the batcher
        self._end_active()
        if self.follow and self.step == 0 and self._followed != self.epoch:
            self._followed = self.epoch
            self._refresh()
        self._active = self._batches()
        return self._active

    def _next_epoch(self) -> None:
        """Start the next epoch at the current window: its budget counts from here, so the windows the
        last one left over (fewer than a global batch) start it."""
        self.epoch, self.step = self.epoch + 1, 0
        self.epoch_end = self.windows + self.plan.epoch_windows(self.epoch)
        self._mark()

    def _mark(self) -> None:
        """Record the current position as the start of a run of steps at one global batch in one
        epoch (replacing a mark at the same step)."""
        if self._marks and self._marks[-1][2] == self.global_step:
            self._marks.pop()
        self._marks.append((self.epoch, self.step, self.global_step, self.windows, self.epoch_end))

    def _position_after(self, step: int) -> Position:
        return position_after(self._marks, step, self.plan.global_batch, MARKS_KEPT)

    def _move_onto(self, plan: LoaderPlan, manifests: Sequence[ShardManifest], counts: Sequence[int]) -> None:
        """Install ``plan`` with each source moved onto the first ``counts[i]`` shards of
        ``manifests[i]`` from its next stream epoch on (sharding.loader.state.moved_plan)."""
        moved = moved_plan(plan, self.windows, manifests, counts)
        same = moved.eras == self.plan.eras and moved.weights == self.plan.weights and all(
            a is b for a, b in zip(moved.manifests, self.plan.manifests, strict=True)
        )
        if not same:
            self._install(moved)  # a new batcher: its shard checks start afresh
            return
        # the same plan at another position: keep the batchers and what they verified
        for b in (self.batcher, *self._twins):
            b.window_offset = self.windows - self.global_step * self.plan.global_batch

    def _refresh(self) -> None:
        """At an epoch's start (follow=True): re-read the sources and move onto what every rank
        agrees extends them (sharding.loader.follow)."""
        moved = follow_.agreed_manifests(self.plan, self._names, lambda n: resolve(n, self._resolver), self._remote)
        if moved is None:
            return
        self._move_onto(self.plan, *moved)
        self.epoch_end = self.windows + self.plan.epoch_windows(self.epoch)
        self._mark()
        log.info("follow: epoch %d moves onto %s (%s shards)", self.epoch, [m.uri for m in moved[0]], moved[1])

    def _end_active(self) -> None:
        """End the iteration in progress (or one that ended on an error) and wait until its threads
        have exited: they pack on the batcher the next iteration uses. (An iteration the garbage
        collector finalises only signals its threads, which exit on their own: waiting there could
        deadlock on a lock the collecting thread holds.)"""
        active, self._active = self._active, None
        if active is not None:
            active.close()  # type: ignore[attr-defined]
        if self._threads:
            from sharding.loader import torch_glue as lt

            threads, self._threads = self._threads, []
            lt.wait_for(threads)

    def _batches(self) -> Iterator[dict[str, Any]]:
        import torch

        from sharding.loader import torch_glue as lt

        first = self.global_step
        g = self.plan.global_batch
        stop = first + (self.epoch_end - self.windows) // g
        batcher = self.batcher
        # remote sources keep one producer: a second batcher would pin its own shards in the bounded cache
        opts = self.options
        producers = 1 if any(m.remote for m in self.plan.manifests) else opts.producers
        if opts.num_workers > 0:
            nw = opts.num_workers

            def make() -> Iterator[list[dict[str, Any]]]:
                return ([b] for b in lt.worker_batches(batcher, first, stop, nw))

            depth = opts.prefetch
        else:
            depth = -(-opts.prefetch // batcher.chunk_steps)  # queued chunks holding `prefetch` batches
            if producers == 1:

                def make() -> Iterator[list[dict[str, Any]]]:
                    # array sets: the queued chunks, one being made, one the consumer holds, one spare
                    return batcher.chunks(first, stop, keep=depth + 3)

            else:
                makers = [self._producer(i, producers, first, stop, depth) for i in range(producers)]

                def make() -> Iterator[list[dict[str, Any]]]:
                    got = lt.interleaved(makers, depth, started)
                    opened.append(got)
                    return got

        device = None if self.device is None else torch.device(self.device)
        expected = first
        started = self._threads = []
        opened: list[Iterator[Any]] = []  # the producer threads' generator, closed explicitly below
        batches = lt.device_batches(
            make,
            device,
            depth,
            background=opts.num_workers == 0 and producers == 1,
            in_flight=opts.prefetch,
            started=started,
        )
        try:
            for batch in batches:
                if int(batch["step"]) != expected:
                    raise RuntimeError(f"loader produced step {int(batch['step'])} where {expected} was due")
                expected += 1
                # the position counts batches handed out, never the ones the prefetch thread made ahead
                self.step += 1
                self.global_step += 1
                self.windows += g
                if self.windows + g > self.epoch_end:
                    self._next_epoch()
                yield batch
        finally:
            batches.close()  # stops the prefetch thread now, not when the frame is collected
            for got in opened:
                got.close()  # type: ignore[attr-defined]  # stops the producer threads

    def _producer(
        self, part: int, parts: int, first: int, stop: int, depth: int
    ) -> Callable[[], Iterator[Any]]:
        """Producer ``part`` of ``parts``: chunks ``part, part + parts, ...`` of steps
        ``[first, stop)`` as CPU tensors, each chunk's lists followed by None, made on a batcher of
        its own (producer 0 uses :attr:`batcher`, the others copies of it made once)."""
        from sharding.loader import torch_glue as lt

        while len(self._twins) < parts - 1:
            twin = pickle.loads(pickle.dumps(self.batcher))
            twin.share_checks(self.batcher)  # each shard's checksum is computed once, by whichever needs it first
            self._twins.append(twin)
        batcher = self.batcher if part == 0 else self._twins[part - 1]

        def make() -> Iterator[Any]:
            # array sets: the queued chunks, one being made, one the consumer holds, one spare
            for got in batcher.strided_chunks(first, stop, part=part, parts=parts, keep=depth + 3):
                yield None if got is None else [lt.as_tensors(b) for b in got]

        return make

    def state_dict(self, *, after_step: int | None = None) -> dict[str, Any]:
        """Position after the batches handed out so far: ``windows`` (global windows served),
        ``epoch_end`` (the window where the current epoch's budget ends), epoch, step and global step
        counters, the global batch and seed it was saved at, the ``eras`` (per source, which leading
        shards each stream epoch reads) and a config hash over the data those eras read. JSON-able.
        ``after_step``: the position after the batch whose ``batch["step"]`` it is instead, for a
        trainer that fetches batches ahead of training them (Lightning, Accelerate): the state then
        resumes after the last batch trained. ValueError unless that batch has been handed out, in
        the last ``MARKS_KEPT`` epochs and since the last ``load_state_dict``."""
        position = (self.epoch, self.step, self.global_step, self.windows, self.epoch_end)
        if after_step is not None:
            if not 0 <= after_step < self.global_step:
                raise ValueError(f"after_step={after_step} is not a step handed out (0..{self.global_step - 1})")
            position = self._position_after(after_step)
        epoch, step, global_step, windows, epoch_end = position
        return {
            "version": STATE_VERSION,
            "epoch": epoch,
            "step": step,
            "global_step": global_step,
            "windows": windows,
            "epoch_end": epoch_end,
            "global_batch": self.plan.global_batch,
            "seed": self.plan.seed,
            "config_hash": self._hash,
            "eras": [[list(e) for e in eras] for eras in self.plan.eras],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state``. An iteration in progress ends (its prefetched batches are dropped);
        the next ``for`` loop starts at ``state``'s position.

        The state may come from another topology or global batch: the next step serves the windows
        right after the ones served. It may come from an earlier manifest of a growing dataset, one
        this loader's manifest extends (the same shards first, by checksum): the epochs begun keep
        reading the saved shards, the new shards join from each source's next epoch. Raises
        ValueError when it was saved with other data, seed, seq_len, weights or block sizes (the
        message names the first difference found), or at a position outside its epoch."""
        version = state.get("version")
        if version == 1:
            state = v1_position(state, self.plan)
        elif version != STATE_VERSION:
            raise ValueError(f"state version {version!r} is not {STATE_VERSION}")
        if state.get("seed") != self.plan.seed:
            raise ValueError(f"state seed={state.get('seed')!r} does not match this loader's {self.plan.seed!r}")
        saved_eras = eras_of_state(state, self.plan.manifests)
        plan = self.plan.replace(eras=saved_eras)
        if not self._explicit_weights:
            plan = plan.replace(weights=tuple(float(x) for x in normalize_weights(token_weights(plan.manifests, saved_eras))))
        mine = plan.config_hash()
        if state.get("config_hash") != mine:
            raise ValueError(
                f"state config_hash={state.get('config_hash')!r} does not match this loader's {mine!r}: other "
                "data (not a manifest extending the saved one), seq_len, weights or block sizes"
            )
        position = check_position(state)
        # batches made ahead for the old position are dropped with the iteration that made them
        self._end_active()
        self.epoch, self.step, self.global_step, self.windows, self.epoch_end = position
        self._marks.clear()
        self._mark()
        self._followed = self.epoch
        self._move_onto(plan, self.plan.manifests, [e[-1][1] for e in self.plan.eras])
        if self.windows + self.plan.global_batch > self.epoch_end:
            self._next_epoch()  # fewer windows left in the epoch than this loader's global batch

    def close(self) -> None:
        """Release shard maps and stop background fetches."""
        self._end_active()
        self.batcher.close()
        for twin in self._twins:
            twin.close()
