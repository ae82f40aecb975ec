"""What a loader reads, independent of torch: sources, the global window plan, and host-side batches."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from sharding.errors import CorruptShardError
from sharding.loader import kernels
from sharding.loader.buffers import BufferPool
from sharding.loader.fields import FIELDS, OUTPUTS
from sharding.loader.manifest import RemoteOptions
from sharding.loader.pack import pack_stream, pack_windows
from sharding.loader.plan import LoaderPlan
from sharding.loader.shuffle import rank_windows
from sharding.loader.store import OnCorrupt, ShardStore
from sharding.loader.stream import MixSchedule, SourceStream

log = logging.getLogger(__name__)

CHUNK_TOKENS = 1 << 18  # tokens per rank packed by one kernel call (several steps when batches are small)
CHUNK_SPAN = 1 << 26  # stream tokens a chunk may span (bounds the document table it needs)

Batch = dict[str, np.ndarray | int]
__all__ = ["CHUNK_SPAN", "CHUNK_TOKENS", "Batch", "HostBatcher", "LoaderPlan"]


class HostBatcher:
    """Builds one rank's batches as numpy arrays: ``batch(step)`` for a global step number (epochs
    run on: step ``k`` of epoch ``e`` is global step ``e * steps_per_epoch + k``), or ``chunks(first,
    stop)`` for a run of steps, ``chunk_steps`` at a time, each run packed by one kernel call per
    source. Picklable, so DataLoader workers each hold their own copy.

    Memory: the batches of one chunk are views of shared arrays allocated for that chunk alone and
    never reused, so every batch stays valid for as long as the caller holds it.
    """

    def __init__(
        self,
        plan: LoaderPlan,
        *,
        rank: int,
        world_size: int,
        verify: bool = True,
        on_corrupt: OnCorrupt = "raise",
        remote: RemoteOptions | None = None,
        mask_cross_document: bool = True,
        ignore_index: int = -100,
        fields: tuple[str, ...] = FIELDS,
    ) -> None:
        fields = tuple(fields)
        if "input_ids" not in fields or not set(fields) <= set(FIELDS):
            raise ValueError(f"fields must include 'input_ids' and be among {FIELDS}, got {fields}")
        if world_size <= 0 or plan.global_batch % world_size:
            raise ValueError(f"global_batch {plan.global_batch} is not divisible by world_size {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.plan = plan
        self.rank = rank
        self.world_size = world_size
        self.batch_size = plan.global_batch // world_size
        self.mask_cross_document = mask_cross_document
        self.ignore_index = ignore_index
        self.fields = tuple(f for f in FIELDS if f in fields)
        self.streams = [
            SourceStream(
                ShardStore(m, verify=verify, on_corrupt=on_corrupt, remote=remote),
                seed=plan.seed,
                stream=i,
                block_shards=plan.block_shards,
                eras=plan.eras[i],
            )
            for i, m in enumerate(plan.manifests)
        ]
        self.schedule = MixSchedule(list(plan.weights), seed=plan.seed, block_windows=plan.mix_block_windows)
        s = plan.seq_len
        self.chunk_steps = max(
            1, min(CHUNK_TOKENS // (self.batch_size * s), CHUNK_SPAN // (plan.global_batch * s))
        )
        self._seg: np.ndarray | None = None
        # global window of step 0's first row: steps after a change of global batch continue the
        # window sequence where the previous batch size left it (see TokenLoader.load_state_dict)
        self.window_offset = 0

    def share_checks(self, other: HostBatcher) -> None:
        """Take ``other``'s shard verdicts (a batcher of the same plan in this process), so shards both
        read are checked once (see sharding.loader.store.ShardChecks)."""
        for mine, theirs in zip(self.streams, other.streams, strict=True):
            mine.store.share_checks(theirs.store)

    @property
    def _arrays(self) -> tuple[str, ...]:
        """The int64 ``[rows, seq_len]`` outputs among :attr:`fields`."""
        return tuple(k for k in self.fields if k in OUTPUTS)

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_seg"] = None
        return state

    def _window_sources(self, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(source id, source window index) of each row of ``steps``' batches, row-major."""
        b = self.batch_size
        g = self.window_offset + (
            (steps[:, None] * self.world_size + self.rank) * b + np.arange(b, dtype=np.int64)
        ).reshape(-1)
        if len(self.streams) == 1:
            return np.zeros_like(g), g
        looked = [self.schedule.lookup(int(g0), int(g0) + b) for g0 in g[::b]]
        return np.concatenate([x for x, _ in looked]), np.concatenate([y for _, y in looked])

    def chunk(self, steps: np.ndarray | list[int], pool: BufferPool | None = None) -> list[Batch]:
        """Packed inputs of global steps ``steps`` for this rank, one dict per step (see
        :meth:`batch`), made by one fused kernel call per source; written into arrays from ``pool``
        when given (see sharding.loader.buffers), into new arrays otherwise."""
        steps = np.asarray(steps, dtype=np.int64).reshape(-1)
        if len(steps) == 0 or int(steps.min()) < 0:
            raise ValueError(f"steps must be a non-empty list of steps >= 0, got {steps.tolist()}")
        s, b = self.plan.seq_len, self.batch_size
        n_rows = len(steps) * b
        want_cu = "cu_seqlens" in self.fields
        if want_cu and (self._seg is None or self._seg.shape[0] < n_rows):
            self._seg = np.empty((n_rows, s), dtype=np.int32)  # scratch: copied into cu_seqlens below
        arrays = (
            pool.take(n_rows, s)
            if pool is not None
            else {k: np.empty((n_rows, s), np.int64) for k in self.fields if k in OUTPUTS}
        )
        out = {
            **arrays,
            "seg": self._seg[:n_rows] if want_cu and self._seg is not None else None,
            "n_seg": np.empty(n_rows, dtype=np.int64),
        }
        del arrays
        src, idx = self._window_sources(steps)
        for sid, stream in enumerate(self.streams):
            rows = np.arange(n_rows, dtype=np.int64) if len(self.streams) == 1 else np.flatnonzero(src == sid)
            if len(rows):
                stream.pack(
                    rows,
                    idx[rows] * s,
                    out,
                    ignore_index=self.ignore_index,
                    mask_cross_document=self.mask_cross_document,
                )
        made = {k: a for k in OUTPUTS if (a := out.get(k)) is not None}
        batches: list[Batch] = []
        for i, step in enumerate(steps.tolist()):
            rows_i = slice(i * b, (i + 1) * b)
            batch: Batch = {k: a[rows_i] for k, a in made.items()}
            batch["step"] = step
            batches.append(batch)
        if want_cu:
            cu, ptr, max_len = kernels.kernels().cu_seqlens(
                out["seg"], out["n_seg"], n_batches=len(steps), batch=b
            )
            for i, batch in enumerate(batches):
                batch["cu_seqlens"] = cu[ptr[i] : ptr[i + 1]]
                batch["max_seqlen"] = int(max_len[i])
        return batches

    def chunks(self, first: int, stop: int, *, keep: int = 4) -> Iterator[list[Batch]]:
        """Batches of steps ``[first, stop)`` in order, ``chunk_steps`` per list, packed into a pool of
        ``keep`` reused array sets (a set is rewritten only once the caller holds no view of it). When
        a chunk meets a corrupt shard (under the "raise" policy) its steps are made one at a time, so
        the error comes after every good batch before the step that needs the shard.

        Until the kernels have loaded (sharding.loader.kernels; the load starts once the first
        batch is made) each list is one batch from :meth:`reference_batch`, in fresh arrays: the
        same batches, sooner after start-up."""
        pool = BufferPool(keep, self._arrays)
        lo = first
        while lo < stop:
            if not kernels.ready():
                got = [self.reference_batch(lo)]
                kernels.start()
                yield got
                lo += 1
                continue
            steps = np.arange(lo, min(lo + self.chunk_steps, stop), dtype=np.int64)
            lo += len(steps)
            try:
                got = self.chunk(steps, pool)
            except CorruptShardError:
                if len(steps) == 1:
                    raise
                for step in steps.tolist():
                    yield [self.batch(step)]
                continue
            yield got

    def strided_chunks(
        self, first: int, stop: int, *, part: int, parts: int, keep: int = 4
    ) -> Iterator[list[Batch] | None]:
        """The batches of chunks ``part, part + parts, ...`` of steps ``[first, stop)`` cut every
        ``chunk_steps`` steps from ``first``, each chunk's lists followed by ``None``; ``parts``
        producers with ``part = 0 .. parts - 1`` together make every chunk once, and taking their
        chunks in turn gives the batches in step order. Arrays come from a pool of ``keep`` sets
        owned by this call, so producers on separate batchers share no mutable state. Until the
        kernels have loaded, steps come one list each from :meth:`reference_batch`; a chunk that
        meets a corrupt shard is made one step at a time (see :meth:`chunks`). Raises ValueError
        for ``part`` outside ``[0, parts)``."""
        if parts <= 0 or not 0 <= part < parts:
            raise ValueError(f"part must be in [0, parts) with parts > 0, got part={part}, parts={parts}")
        pool = BufferPool(keep, self._arrays)
        cs = self.chunk_steps
        got: list[Batch] | None
        for lo in range(first + part * cs, stop, parts * cs):
            hi = min(lo + cs, stop)
            while lo < hi and not kernels.ready():
                got = [self.reference_batch(lo)]
                kernels.start()
                yield got
                lo += 1
            if lo < hi:
                steps = np.arange(lo, hi, dtype=np.int64)
                try:
                    got = self.chunk(steps, pool)
                except CorruptShardError:
                    if len(steps) == 1:
                        raise
                    got = None
                if got is None:
                    for step in steps.tolist():
                        yield [self.batch(step)]
                else:
                    yield got
                del got
            yield None

    def windows(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | tuple[np.ndarray, ...]:
        """Raw data of global step ``step``: ``(tokens, doc_start, valid)``, either flat
        (``batch_size * seq_len + 1`` stream tokens, when all rows are consecutive windows of one
        source) or ``[batch_size, seq_len + 1]`` windows (when mixing interleaves sources)."""
        s = self.plan.seq_len
        b = self.batch_size
        g0, g1 = rank_windows(step, rank=self.rank, batch_size=b, world_size=self.world_size)
        src, idx = self.schedule.lookup(g0 + self.window_offset, g1 + self.window_offset)
        runs = np.flatnonzero((src[1:] != src[:-1]) | (idx[1:] != idx[:-1] + 1)) + 1
        bounds = [0, *runs.tolist(), b]
        flats = []
        for row, end in zip(bounds[:-1], bounds[1:], strict=True):
            # a run of rows from one source with consecutive window indexes is one contiguous read
            n = end - row
            lo = int(idx[row]) * s
            flat = (
                np.empty(n * s + 1, dtype=np.int64),
                np.empty(n * s + 1, dtype=bool),
                np.empty(n * s + 1, dtype=bool),
            )
            self.streams[int(src[row])].read(lo, lo + n * s + 1, *flat)
            flats.append(flat)
        if len(flats) == 1:
            return flats[0]
        out = tuple(np.empty((b, s + 1), dtype=dt) for dt in (np.int64, bool, bool))
        for (row, end), flat in zip(zip(bounds[:-1], bounds[1:], strict=True), flats, strict=True):
            for o, f in zip(out, flat, strict=True):
                o[row:end] = np.lib.stride_tricks.as_strided(
                    f, shape=(end - row, s + 1), strides=(s * f.itemsize, f.itemsize)
                )
        return out

    def batch(self, step: int) -> Batch:
        """Packed inputs of global step ``step`` for this rank: ``input_ids``, ``labels``,
        ``position_ids`` (int64 ``[batch_size, seq_len]``), ``cu_seqlens`` (int32), ``max_seqlen`` and
        ``step``, as defined by sharding.loader.pack.pack_windows (which :meth:`reference_batch` runs); made by
        :meth:`reference_batch` itself until the kernels have loaded (starting their load)."""
        if not kernels.ready():
            got = self.reference_batch(step)
            kernels.start()
            return got
        return self.chunk([step])[0]

    def reference_batch(self, step: int) -> Batch:
        """:meth:`batch` computed by the plain numpy path (:meth:`windows` then sharding.loader.pack), which the
        fused kernel must match exactly; kept as the specification and for tests."""
        tokens, starts, valid = self.windows(step)
        ignore, mask = self.ignore_index, self.mask_cross_document
        if tokens.ndim == 1:
            out = pack_stream(
                tokens, starts, valid, batch=self.batch_size, ignore_index=ignore, mask_cross_document=mask
            )
        else:
            out = pack_windows(tokens, starts, valid, ignore_index=ignore, mask_cross_document=mask)
        keep = set(self.fields) | ({"max_seqlen"} if "cu_seqlens" in self.fields else set())
        return {**{k: v for k, v in out.items() if k in keep}, "step": step}

    def close(self) -> None:
        for s in self.streams:
            s.store.close()
