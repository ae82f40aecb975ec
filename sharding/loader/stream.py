"""The token stream of one source, and the mixing schedule that interleaves several sources.

A source's stream is its documents (each followed by one EOD) in the epoch's order, epochs end to
end. :class:`SourceStream` copies any token range ``[start, stop)`` of it into caller-provided numpy
buffers. Only the current block's metadata is held in memory: a few int64 arrays, no Python
object per sample.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from sharding.loader import kernels
from sharding.loader.eras import Era, StreamEras
from sharding.loader.kernels import SLOT_CLOSED, SLOT_OPEN, SLOT_SKIPPED
from sharding.loader.shuffle import (
    block_starts,
    block_token_offsets,
    document_permutation,
    mixture_block_counts,
    mixture_block_sources,
    shard_permutation,
)
from sharding.loader.store import ShardStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Block:
    shards: np.ndarray  # shard id of each document, in stream order
    byte_offset: np.ndarray  # byte offset of each document's tokens in its shard
    n_tokens: np.ndarray
    start: np.ndarray  # stream offset of each document within the block, plus the block length at the end


class DocTable:
    """The documents of one stretch of a source's stream, laid out for :func:`sharding.loader.gather.pack_rows`.

    Document ``d`` spans absolute stream offsets ``[start[d], start[d + 1])`` and its tokens lie at
    token offset ``src[d]`` of ``shards[slot[d]]``. Slots open lazily (:meth:`open`); the table keeps
    every open shard map alive, since the kernel reads them by address.
    """

    def __init__(self, store: ShardStore, shards: np.ndarray, src: np.ndarray, start: np.ndarray) -> None:
        self.store = store
        self.shards, slot = np.unique(shards, return_inverse=True)
        self.slot = slot.astype(np.int64).reshape(-1)
        self.src = src
        self.start = start
        n = len(self.shards)
        self.addr = np.zeros(n, dtype=np.int64)
        self.length = np.zeros(n, dtype=np.int64)
        self.state = np.full(n, SLOT_CLOSED, dtype=np.int8)
        self._maps: list[np.ndarray | None] = [None] * n

    def covers(self, lo: int, hi: int) -> bool:
        return int(self.start[0]) <= lo and hi <= int(self.start[-1])

    def open(self, need: np.ndarray) -> None:
        """Open the slots flagged in ``need`` (verifying each shard on first use; CorruptShardError
        under the "raise" policy)."""
        itemsize = self.store.manifest.token_dtype.itemsize
        slots = np.flatnonzero(need).tolist()
        for sl, buf in zip(
            slots, self.store.tokens_many([int(self.shards[sl]) for sl in slots]), strict=True
        ):
            if buf is None:
                self.state[sl] = SLOT_SKIPPED
                continue
            self._maps[sl] = buf
            self.addr[sl] = buf.ctypes.data
            self.length[sl] = buf.nbytes // itemsize
            self.state[sl] = SLOT_OPEN


class SourceStream:
    """Reads ranges of one source's infinite token stream (see sharding.loader.shuffle for the order).

    ``stream`` tells apart sources mixed under one seed. ``eras`` (see sharding.loader.eras) say how
    many leading shards of the store's manifest each epoch reads (default: all of them, always).
    Memory: the per-epoch shard order and up to two blocks of per-document int64 arrays.
    """

    def __init__(
        self, store: ShardStore, *, seed: int, stream: int, block_shards: int, eras: tuple[Era, ...] | None = None
    ) -> None:
        if block_shards <= 0:
            raise ValueError(f"block_shards must be > 0, got {block_shards}")
        self.store = store
        self.seed = seed
        self.stream = stream
        self.block_shards = block_shards
        m = store.manifest
        self.eod_id = m.eod_id
        self.dtype = m.token_dtype
        self.eras = StreamEras(m.stream_tokens, eras or ((0, m.n_shards),))
        if store.cache is not None:
            self._fit_cache(store, block_shards)
        self._epochs: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._blocks: OrderedDict[tuple[int, int], _Block] = OrderedDict()
        self._table: DocTable | None = None

    @staticmethod
    def _fit_cache(store: ShardStore, block_shards: int) -> None:
        """The cache must hold the block being read; the rest holds the prefetched next block."""
        assert store.cache is not None
        biggest = int(store.manifest.nbytes.max())
        per_block = min(block_shards, store.manifest.n_shards)
        limit = store.cache.max_bytes
        if limit < per_block * biggest:
            raise ValueError(
                f"cache_limit_bytes {limit} cannot hold one block of {per_block} shards of up to {biggest} bytes"
            )
        fits = limit // biggest
        if fits < 2 * per_block:
            log.warning("shard cache holds %d shards, fewer than two blocks: prefetch is limited", fits)
        store.keep_open = max(per_block, fits - per_block)
        # shards in use plus shards fetched ahead never exceed what the cache holds
        store.prefetch_limit = max(0, min(store.remote.prefetch_shards, fits - store.keep_open))

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_epochs"], state["_blocks"], state["_table"] = OrderedDict(), OrderedDict(), None
        return state

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        got = self._epochs.get(epoch)
        if got is None:
            n = self.eras.n_shards(epoch)
            order = shard_permutation(n, seed=self.seed, epoch=epoch, stream=self.stream)
            got = (order, block_token_offsets(self.store.manifest.stream_tokens[:n], order, self.block_shards))
            self._epochs[epoch] = got
            while len(self._epochs) > 2:
                self._epochs.popitem(last=False)
        return got

    def _block(self, epoch: int, block: int) -> _Block:
        got = self._blocks.get((epoch, block))
        if got is not None:
            return got
        order, _ = self._epoch(epoch)
        starts = block_starts(len(order), self.block_shards)
        shards = order[starts[block] : starts[block + 1]]
        indexes = [self.store.index(int(s)) for s in shards]
        shard_of = np.repeat(shards, [len(i) for i in indexes])
        cat = np.concatenate(indexes)
        perm = document_permutation(len(cat), seed=self.seed, epoch=epoch, block=block, stream=self.stream)
        n_tok = cat[perm, 1]
        start = np.concatenate([[0], np.cumsum(n_tok + 1)]).astype(np.int64)
        got = _Block(shards=shard_of[perm], byte_offset=cat[perm, 0], n_tokens=n_tok, start=start)
        self._blocks[(epoch, block)] = got
        while len(self._blocks) > 2:
            self._blocks.popitem(last=False)
        self.store.prefetch(self._upcoming_shards(epoch, block))
        return got

    def _upcoming_shards(self, epoch: int, block: int) -> list[int]:
        n_blocks = len(block_starts(self.eras.n_shards(epoch), self.block_shards)) - 1
        nxt_epoch, nxt = (epoch, block + 1) if block + 1 < n_blocks else (epoch + 1, 0)
        order, _ = self._epoch(nxt_epoch)
        starts = block_starts(len(order), self.block_shards)
        return [int(s) for s in order[starts[nxt] : starts[nxt + 1]]]

    def _block_at(self, pos: int) -> tuple[_Block, int]:
        """The block holding stream offset ``pos``, and the stream offset where that block starts."""
        epoch, epoch_start = self.eras.locate(pos)
        _, boffs = self._epoch(epoch)
        b = int(np.searchsorted(boffs, pos - epoch_start, side="right")) - 1
        return self._block(epoch, b), epoch_start + int(boffs[b])

    def read(
        self, start: int, stop: int, tokens: np.ndarray, doc_start: np.ndarray, valid: np.ndarray
    ) -> None:
        """Copy stream tokens ``[start, stop)`` into ``tokens`` (int64, length ``stop - start``).

        ``doc_start[i]`` is set True where a document begins; ``valid[i]`` False where the token comes
        from a skipped corrupt shard (filled with EOD), the EOD after such a document included. Raises CorruptShardError for a corrupt shard
        under the "raise" policy, ValueError for a bad range.
        """
        if not 0 <= start <= stop or len(tokens) != stop - start:
            raise ValueError(f"bad range [{start}, {stop}) for a buffer of {len(tokens)} tokens")
        doc_start[:] = False
        valid[:] = True
        pos = start
        while pos < stop:
            blk, first = self._block_at(pos)
            lo = pos - first
            hi = min(lo + (stop - pos), int(blk.start[-1]))
            self._copy_span(
                blk, lo, hi, tokens[pos - start :], doc_start[pos - start :], valid[pos - start :]
            )
            pos += hi - lo

    def table(self, lo: int, hi: int) -> DocTable:
        """A document table covering stream offsets ``[lo, hi)``: the blocks that hold them, end to end
        (kept while later ranges still fall inside it)."""
        if self._table is not None and self._table.covers(lo, hi):
            return self._table
        if not 0 <= lo < hi:
            raise ValueError(f"bad stream range [{lo}, {hi})")
        parts = []
        pos = lo
        while True:
            blk, first = self._block_at(pos)
            parts.append((blk, first))
            pos = first + int(blk.start[-1])
            if pos >= hi:
                break
        itemsize = self.dtype.itemsize
        shards = np.concatenate([blk.shards for blk, _ in parts])
        src = np.concatenate([blk.byte_offset // itemsize for blk, _ in parts])
        start = np.concatenate([blk.start[:-1] + first for blk, first in parts] + [[pos]]).astype(np.int64)
        self._table = DocTable(self.store, shards, src, start)
        return self._table

    def pack(
        self,
        rows: np.ndarray,
        offsets: np.ndarray,
        out: dict[str, np.ndarray | None],
        *,
        ignore_index: int,
        mask_cross_document: bool,
    ) -> None:
        """Fill ``out`` rows ``rows`` with the windows starting at stream offsets ``offsets`` (see
        :func:`sharding.loader.gather.pack_rows` for ``out``'s arrays). Shards open, and are verified,
        when a window first needs them. Raises CorruptShardError under the "raise" policy.

        Rows are packed in runs whose windows lie in the blocks around the run's first window, so
        a table never spans more blocks than one window does (which bounds open shards and memory).
        """
        ids = out["input_ids"]
        if ids is None:
            raise ValueError("out must hold an input_ids array")
        s = ids.shape[1]
        if len(offsets) > 1 and np.any(offsets[1:] < offsets[:-1]):
            order = np.argsort(offsets, kind="stable")
            rows, offsets = rows[order], offsets[order]
        i = 0
        while i < len(rows):
            table = self.table(int(offsets[i]), int(offsets[i]) + s + 1)
            j = int(np.searchsorted(offsets, int(table.start[-1]) - s - 1, side="right"))
            self._pack_table(table, rows[i:j], offsets[i:j], out, ignore_index, mask_cross_document)
            i = j

    def _pack_table(
        self,
        table: DocTable,
        rows: np.ndarray,
        offsets: np.ndarray,
        out: dict[str, np.ndarray | None],
        ignore_index: int,
        mask_cross_document: bool,
    ) -> None:
        pack_rows = kernels.kernels().pack_rows
        while True:
            need = np.zeros(len(table.state), dtype=np.uint8)
            missing = pack_rows(
                table.addr,
                table.length,
                table.state,
                self.dtype,
                table.slot,
                table.src,
                table.start,
                rows,
                offsets,
                eod=self.eod_id,
                ignore_index=ignore_index,
                mask_cross_document=mask_cross_document,
                input_ids=out["input_ids"],
                labels=out.get("labels"),
                position_ids=out.get("position_ids"),
                seg=out.get("seg"),
                n_seg=out["n_seg"],
                need=need,
            )
            if not missing:
                return
            table.open(need)

    def _copy_span(
        self, blk: _Block, lo: int, hi: int, tokens: np.ndarray, doc_start: np.ndarray, valid: np.ndarray
    ) -> None:
        """Copy block offsets ``[lo, hi)`` to the front of the output arrays, vectorised per shard."""
        d0 = int(np.searchsorted(blk.start, lo, side="right")) - 1
        d1 = int(np.searchsorted(blk.start, hi, side="left"))
        begin = blk.start[d0:d1]
        tok_end = begin + blk.n_tokens[d0:d1]  # the EOD sits at tok_end
        seg_lo = np.maximum(begin, lo)
        real = np.maximum(np.minimum(tok_end, hi) - seg_lo, 0)
        dst = seg_lo - lo
        doc_start[(begin[begin >= lo] - lo)] = True
        eod = tok_end < hi
        tokens[tok_end[eod] - lo] = self.eod_id
        src = blk.byte_offset[d0:d1] // self.dtype.itemsize + (seg_lo - begin)
        shards = blk.shards[d0:d1]
        for shard in np.unique(shards):
            buf = self.store.tokens(int(shard))
            if buf is None:
                # a skipped document's EOD is no target either (its tokens are marked below)
                valid[tok_end[eod & (shards == shard)] - lo] = False
            m = (shards == shard) & (real > 0)
            if not m.any():
                continue
            n = real[m]
            total = int(n.sum())
            within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
            dst_idx = np.repeat(dst[m], n) + within
            if buf is None:
                tokens[dst_idx] = self.eod_id
                valid[dst_idx] = False
            else:
                tokens[dst_idx] = buf.view(self.dtype)[np.repeat(src[m], n) + within]


class MixSchedule:
    """Which source each global window comes from, and its window index within that source.

    One source: window ``g`` is source 0's window ``g``. Several: blocks of ``block_windows`` global
    windows are split among sources by :func:`sharding.loader.shuffle.mixture_block_counts` and ordered by
    :func:`sharding.loader.shuffle.mixture_block_sources`; a source's windows are consumed in order, so its
    window index at ``g`` is the number of earlier windows given to it. Pure in ``(weights, seed, g)``.
    """

    def __init__(self, weights: list[float], *, seed: int, block_windows: int = 1024) -> None:
        self.weights = weights
        self.seed = seed
        self.block_windows = block_windows
        self._prefix = np.zeros((1, len(weights)), dtype=np.int64)  # windows per source before block i
        self._order: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _prefix_at(self, block: int) -> np.ndarray:
        have = len(self._prefix) - 1
        if block > have:
            n = max(block - have, have)  # grow geometrically
            counts = mixture_block_counts(
                self.weights, block_windows=self.block_windows, seed=self.seed, first_block=have, n_blocks=n
            )
            self._prefix = np.concatenate([self._prefix, self._prefix[-1] + np.cumsum(counts, axis=0)])
        return self._prefix[block]

    def _block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        got = self._order.get(block)
        if got is None:
            counts = self._prefix_at(block + 1) - self._prefix_at(block)
            src = mixture_block_sources(counts, seed=self.seed, block=block)
            rank_in_block = np.empty_like(src)
            for s in range(len(counts)):
                hit = src == s
                rank_in_block[hit] = np.arange(int(hit.sum()))
            got = (src, self._prefix_at(block)[src] + rank_in_block)
            self._order[block] = got
            while len(self._order) > 2:
                self._order.popitem(last=False)
        return got

    def consumed(self, g: int) -> np.ndarray:
        """How many windows of each source global windows ``[0, g)`` hold (int64, one per source)."""
        if len(self.weights) == 1:
            return np.array([g], dtype=np.int64)
        b, q = divmod(g, self.block_windows)
        out = self._prefix_at(b).copy()
        if q:
            src, _ = self._block(b)
            out += np.bincount(src[:q], minlength=len(self.weights))
        return out

    def lookup(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(source id, source window index) of global windows ``[start, stop)``, int64 arrays."""
        if len(self.weights) == 1:
            windows = np.arange(start, stop, dtype=np.int64)
            return np.zeros_like(windows), windows
        srcs, idxs = [], []
        g = start
        while g < stop:
            b, q = divmod(g, self.block_windows)
            n = min(stop - g, self.block_windows - q)
            src, idx = self._block(b)
            srcs.append(src[q : q + n])
            idxs.append(idx[q : q + n])
            g += n
        return np.concatenate(srcs), np.concatenate(idxs)
