"""TokenLoader: deterministic, resumable, topology-independent streaming of packed token windows.

The global sequence of batches is a pure function of (sources, weights, seed, seq_len, global
batch): each global step holds ``batch_size * world_size`` windows of ``seq_len + 1`` tokens, and
rank ``r`` reads the ``r``-th run of ``batch_size`` of them. Ranks therefore see disjoint data and
the same number of steps by construction (no collective at an epoch's end), and the state of a
loader is a few integers: resuming on any topology with the same global batch continues exactly.
"""

from __future__ import annotations

import logging
import pickle
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sharding.loader_manifest import RemoteOptions, is_remote, read_manifest
from sharding.loader_plan import FIELDS, HostBatcher, LoaderPlan
from sharding.loader_store import OnCorrupt

if TYPE_CHECKING:  # at run time TokenLoader is registered as one (see _register_iterable_dataset)
    from torch.utils.data import IterableDataset as _DatasetBase
else:
    _DatasetBase = object

log = logging.getLogger(__name__)

STATE_VERSION = 1
Source = str | Path | Sequence[str | Path] | Mapping[str, float]


def _resolve(name: str, resolver: Callable[[str], str] | None) -> str:
    if is_remote(name) or Path(name).exists():
        return name
    if resolver is None:
        resolver = _project_resolver(name)
    return str(resolver(name))


def _project_resolver(name: str) -> Callable[[str], str]:
    """Dataset version names resolve through the tokenmill project in the working directory (params.yaml)."""
    if not Path("params.yaml").exists():
        raise ValueError(
            f"source {name!r} is neither an existing path nor an s3:// URI; to use it as a dataset version, run "
            "from the project folder (params.yaml) or pass resolver=pipelines.versions.manifest_resolver(...)"
        )
    from pipelines.versions import manifest_resolver

    return manifest_resolver("params.yaml")


def _register_iterable_dataset() -> None:
    """Make TokenLoader an ``IterableDataset`` for torch's DataLoader, which tells iterable datasets
    from map-style ones by isinstance (a map-style view would index the loader and fail)."""
    try:
        from torch.utils.data import IterableDataset
    except ImportError:  # the writer side runs without torch
        return
    if not issubclass(TokenLoader, IterableDataset):
        IterableDataset.register(TokenLoader)


def _sources(source: Source) -> tuple[list[str], list[float] | None]:
    if isinstance(source, str | Path):
        return [str(source)], None
    if isinstance(source, Mapping):
        if not source:
            raise ValueError("source is an empty mapping")
        return [str(k) for k in source], [float(v) for v in source.values()]
    names = [str(s) for s in source]
    if not names:
        raise ValueError("source is an empty list")
    return names, None


class TokenLoader(_DatasetBase):
    """Iterate packed token batches from one or more shard manifests.

    With torch installed, a TokenLoader is a ``torch.utils.data.IterableDataset`` (registered as a
    virtual subclass when the first one is made, so importing this module does not import torch):
    ``DataLoader(loader, batch_size=None)`` hands its batches on unchanged, with ``num_workers=0``.
    DataLoader workers or auto-batching raise a one-line error saying what to do instead
    (sharding.loader_torch.check_dataloader_use); pass ``num_workers`` to the loader itself.

    ``source``: a manifest path or folder, an s3:// URI, a dataset-version name (given to
    ``resolver``, which returns a manifest path/URI), a list of them (mixed in proportion to their
    tokens) or a dict ``{source: weight}``. ``batch_size`` is per rank; rank and world size come
    from torch.distributed when not given (0 and 1 without it). Each item is a dict of
    ``input_ids``, ``labels``, ``position_ids`` (int64 ``[batch_size, seq_len]``), ``cu_seqlens``
    (int32), ``max_seqlen`` and ``step`` (the global step number), as CPU tensors or on ``device``.
    ``fields`` picks the outputs to compute, among ``input_ids`` (always), ``labels``,
    ``position_ids`` and ``cu_seqlens`` (with ``max_seqlen``): a model that shifts its labels itself
    and attends across documents needs ``("input_ids",)``, a third of the memory traffic. It does
    not change which tokens a batch holds, so a state saved with some fields resumes with others.

    One ``for`` loop runs to the end of the current epoch (``len(loader)`` steps); stopping early
    and iterating again continues where it stopped. ``state_dict()`` / ``load_state_dict()`` give
    bit-identical continuation, also onto a different world size with the same global batch.
    ``on_corrupt="skip"`` masks a corrupt shard's documents (EOD filler, labels ignored) instead
    of raising, which keeps every rank's layout identical.

    Batches are packed several steps at a time by a fused numba kernel (sharding.loader_gather);
    without workers, ``producers`` threads (each on its own copy of the batcher) pack alternate
    chunks and the batches are handed out in step order (remote sources use one producer). Until
    the kernel has loaded (in a background thread started once the first batch is made, see
    sharding.loader_kernels) they come one at a time from the numpy path, which gives the same
    batches. A yielded batch's CPU tensors keep their memory for as long as any
    reference to them (or a view, or a numpy array of them) is held; memory that nothing refers
    to any more is reused for later batches (sharding.loader_buffers), so copy a tensor before
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
        num_workers: int = 0,
        device: Any = None,
        resolver: Callable[[str], str] | None = None,
        steps_per_epoch: int | None = None,
        block_shards: int = 4,
        on_corrupt: OnCorrupt = "raise",
        verify: bool = True,
        remote: RemoteOptions | None = None,
        prefetch: int = 4,
        mask_cross_document: bool = True,
        producers: int = 2,
        fields: Sequence[str] = FIELDS,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if producers <= 0:
            raise ValueError(f"producers must be > 0, got {producers}")
        if num_workers < 0 or prefetch <= 0:
            raise ValueError(f"num_workers must be >= 0 and prefetch > 0, got {num_workers} and {prefetch}")
        rank, world_size = self._topology(rank, world_size)
        names, weights = _sources(source)
        manifests = [read_manifest(_resolve(n, resolver), remote) for n in names]
        if weights is None:
            weights = [float(m.stream_tokens.sum()) for m in manifests]
        self.plan = LoaderPlan.build(
            manifests,
            weights,
            seq_len=seq_len,
            global_batch=batch_size * world_size,
            seed=seed,
            block_shards=block_shards,
            steps_per_epoch=steps_per_epoch,
        )
        self.batcher = HostBatcher(
            self.plan,
            rank=rank,
            world_size=world_size,
            verify=verify,
            on_corrupt=on_corrupt,
            remote=remote,
            mask_cross_document=mask_cross_document,
            fields=tuple(fields),
        )
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self.num_workers = num_workers
        self.prefetch = prefetch
        self.producers = producers
        self._twins: list[HostBatcher] = []  # batchers of producer threads 1.. (see _producer)
        self.device = device
        self._hash = self.plan.config_hash()
        self.epoch = 0
        self.step = 0
        self._active: Iterator[dict[str, Any]] | None = None
        self._threads: list[Any] = []  # threads the current iteration started (see _end_active)
        _register_iterable_dataset()

    @staticmethod
    def _topology(rank: int | None, world_size: int | None) -> tuple[int, int]:
        if rank is None or world_size is None:
            import torch.distributed as dist

            ready = dist.is_available() and dist.is_initialized()
            rank = rank if rank is not None else (dist.get_rank() if ready else 0)
            world_size = world_size if world_size is not None else (dist.get_world_size() if ready else 1)
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        return rank, world_size

    def __len__(self) -> int:
        return self.plan.steps_per_epoch

    @property
    def global_step(self) -> int:
        return self.epoch * self.plan.steps_per_epoch + self.step

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from sharding import loader_torch as lt

        lt.check_dataloader_use(sys._getframe(1))
        # one live iteration at a time: its prefetch thread or workers hold the batcher
        self._end_active()
        self._active = self._batches()
        return self._active

    def _end_active(self) -> None:
        """End the iteration in progress (or one that ended on an error) and wait until its threads
        have exited: they pack on the batcher the next iteration uses. (An iteration the garbage
        collector finalises only signals its threads, which exit on their own: waiting there could
        deadlock on a lock the collecting thread holds.)"""
        active, self._active = self._active, None
        if active is not None:
            active.close()  # type: ignore[attr-defined]
        if self._threads:
            from sharding import loader_torch as lt

            threads, self._threads = self._threads, []
            lt.wait_for(threads)

    def _batches(self) -> Iterator[dict[str, Any]]:
        import torch

        from sharding import loader_torch as lt

        first = self.global_step
        stop = (self.epoch + 1) * self.plan.steps_per_epoch
        batcher = self.batcher
        # remote sources keep one producer: a second batcher would pin its own shards in the bounded cache
        producers = 1 if any(m.remote for m in self.plan.manifests) else self.producers
        if self.num_workers > 0:
            nw = self.num_workers

            def make() -> Iterator[list[dict[str, Any]]]:
                return ([b] for b in lt.worker_batches(batcher, first, stop, nw))

            depth = self.prefetch
        else:
            depth = -(-self.prefetch // batcher.chunk_steps)  # queued chunks holding `prefetch` batches
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
            background=self.num_workers == 0 and producers == 1,
            in_flight=self.prefetch,
            started=started,
        )
        try:
            for batch in batches:
                if int(batch["step"]) != expected:
                    raise RuntimeError(f"loader produced step {int(batch['step'])} where {expected} was due")
                expected += 1
                # the position counts batches handed out, never the ones the prefetch thread made ahead
                self.step += 1
                if self.step == self.plan.steps_per_epoch:
                    self.epoch, self.step = self.epoch + 1, 0
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
        from sharding import loader_torch as lt

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

    def state_dict(self, *, after_step: int | None = None) -> dict[str, int | str]:
        """Position after the batches handed out so far: epoch, step, global batch, seed, config hash.
        ``after_step``: the position after the batch whose ``batch["step"]`` it is instead, for a
        trainer that fetches batches ahead of training them (Lightning, Accelerate): the state then
        resumes after the last batch trained. ValueError unless that batch has been handed out."""
        epoch, step = self.epoch, self.step
        if after_step is not None:
            if not 0 <= after_step < self.global_step:
                raise ValueError(f"after_step={after_step} is not a step handed out (0..{self.global_step - 1})")
            epoch, step = divmod(after_step + 1, self.plan.steps_per_epoch)
        return {
            "version": STATE_VERSION,
            "epoch": epoch,
            "step": step,
            "global_batch": self.plan.global_batch,
            "seed": self.plan.seed,
            "config_hash": self._hash,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state``. An iteration in progress ends (its prefetched batches are dropped);
        the next ``for`` loop starts at ``state``'s position. Raises ValueError when it was saved with
        other data, seed, seq_len, weights or global batch (the message names the first difference
        found)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r} is not {STATE_VERSION}")
        for key, mine in (
            ("global_batch", self.plan.global_batch),
            ("seed", self.plan.seed),
            ("config_hash", self._hash),
        ):
            if state.get(key) != mine:
                raise ValueError(f"state {key}={state.get(key)!r} does not match this loader's {mine!r}")
        epoch, step = int(state["epoch"]), int(state["step"])
        if epoch < 0 or not 0 <= step < self.plan.steps_per_epoch:
            raise ValueError(f"state position epoch={epoch}, step={step} is out of range")
        # batches made ahead for the old position are dropped with the iteration that made them
        self._end_active()
        self.epoch, self.step = epoch, step

    def close(self) -> None:
        """Release shard maps and stop background fetches."""
        self._end_active()
        self.batcher.close()
        for twin in self._twins:
            twin.close()
