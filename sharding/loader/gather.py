"""Fused gather-and-pack kernel: shard token spans -> ``input_ids``, ``labels``, ``position_ids`` rows.

One call fills many rows (windows of ``seq_len + 1`` stream tokens) straight from the memory-mapped
shards, in one pass per row and without the GIL, so a prefetch thread runs beside the training loop.
It is the fused form of :meth:`sharding.loader.stream.SourceStream.read` followed by
:func:`sharding.loader.pack.pack_windows`, and gives the same arrays (tests hold the two together).

A *document table* describes a stretch of one source's stream: document ``d`` occupies stream
offsets ``[start[d], start[d + 1])`` (its ``start[d + 1] - start[d] - 1`` tokens, then one EOD) and
its tokens lie at token offset ``src[d]`` of shard slot ``slot[d]``. A slot is a shard the table
uses: ``addr``/``length`` give its token buffer (a memory map owned, and kept alive, by the caller)
and ``state`` says whether it is open (1), skipped as corrupt (2: EOD filler, labels ignored) or not
opened yet (0: the kernel copies nothing from it and reports it, and the caller opens it and calls
again).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from sharding.loader.kernels import SLOT_CLOSED, SLOT_OPEN, SLOT_SKIPPED

__all__ = ["SLOT_CLOSED", "SLOT_OPEN", "SLOT_SKIPPED", "cu_seqlens", "load_kernels", "pack_rows"]


@intrinsic
def _as_pointer(typingctx, addr):  # type: ignore[no-untyped-def]
    """An integer address as a void pointer (numba has no builtin for it)."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(addr), codegen


@nb.njit(nogil=True, cache=True)
def _pack_rows(
    addr,
    length,
    state,
    like,
    slot,
    src,
    start,
    rows,
    offsets,
    eod,
    ignore_index,
    mask_cross,
    input_ids,
    labels,
    position_ids,
    seg,
    n_seg,
    need,
    want_labels,
    want_pos,
    want_seg,
):
    s = input_ids.shape[1]
    missing = 0
    for i in range(len(rows)):
        r = rows[i]
        off = offsets[i]
        # row views and loops counting from 0 let LLVM vectorise the copies; an output that is not
        # wanted is a one-row placeholder, never written
        inp = input_ids[r]
        lab = labels[r if want_labels else 0]
        pos = position_ids[r if want_pos else 0]
        sg = seg[r if want_seg else 0]
        d = np.searchsorted(start, off, side="right") - 1
        p = 0  # window position 0..s of the next token to place
        ns = 0
        while p <= s:
            k = off + p - start[d]  # offset inside document d's span (tokens, then its EOD)
            n_tok = start[d + 1] - start[d] - 1
            take = min(n_tok + 1 - k, s + 1 - p)
            if want_seg and p < s and (p == 0 or k == 0):
                sg[ns] = p
                ns += 1
            if want_pos:
                for t in range(min(take, s - p)):
                    pos[p + t] = t
            n_real = max(0, min(n_tok - k, take))  # document tokens in this piece (the rest is its EOD)
            n_inp = min(n_real, s - p)
            lab0 = 1 if p == 0 else 0  # window position 0 is no row's label
            sl = slot[d]
            st = state[sl]
            if st == 1:
                if src[d] + n_tok > length[sl]:
                    return -1 - d  # the index points past the shard: a caller bug, not bad data
                piece = nb.carray(_as_pointer(addr[sl] + (src[d] + k) * like.itemsize), (n_real,), like.dtype)
                for t in range(n_inp):
                    inp[p + t] = piece[t]
                if want_labels:
                    for t in range(lab0, n_real):
                        lab[p - 1 + t] = piece[t]
            else:
                if st == 0 and need[sl] == 0:
                    need[sl] = 1
                    missing += 1
                for t in range(n_inp):
                    inp[p + t] = eod
                if want_labels:
                    for t in range(lab0, n_real):
                        lab[p - 1 + t] = ignore_index
            e = p + n_real  # the EOD's window position, when this piece reaches it
            if n_real < take:
                if e < s:
                    inp[e] = eod
                if want_labels and e >= 1:
                    # the EOD of a skipped document is filler's target too: ignored like the rest
                    lab[e - 1] = eod if st == 1 else ignore_index
            if want_labels and mask_cross and k == 0 and p >= 1:
                lab[p - 1] = ignore_index
            p += take
            d += 1
        n_seg[r] = ns
    return missing


@nb.njit(nogil=True, cache=True)
def _cu_seqlens(seg, n_seg, n_batches, batch, s, cu, cu_ptr, max_len):
    w = 0
    for k in range(n_batches):
        cu_ptr[k] = w
        longest = 0
        prev = 0
        for b in range(batch):
            r = k * batch + b
            for q in range(n_seg[r]):
                x = b * s + seg[r, q]
                if w > cu_ptr[k]:
                    longest = max(longest, x - prev)
                cu[w] = x
                prev = x
                w += 1
        longest = max(longest, batch * s - prev)
        cu[w] = batch * s
        w += 1
        max_len[k] = longest
    cu_ptr[n_batches] = w


def pack_rows(
    addr: np.ndarray,
    length: np.ndarray,
    state: np.ndarray,
    token_dtype: np.dtype,
    slot: np.ndarray,
    src: np.ndarray,
    start: np.ndarray,
    rows: np.ndarray,
    offsets: np.ndarray,
    *,
    eod: int,
    ignore_index: int,
    mask_cross_document: bool,
    input_ids: np.ndarray,
    labels: np.ndarray | None,
    position_ids: np.ndarray | None,
    seg: np.ndarray | None,
    n_seg: np.ndarray,
    need: np.ndarray,
) -> int:
    """Fill rows ``rows`` of ``input_ids``/``labels``/``position_ids`` (int64 ``[R, seq_len]``) with the
    windows whose first stream offset (in the table's coordinates) is ``offsets[i]``.

    Table: ``slot``/``src`` int64 per document, ``start`` int64 ``[n_docs + 1]`` (see the module
    docstring); slots: ``addr``/``length`` int64 (buffer address, length in tokens of
    ``token_dtype``), ``state`` int8. Outputs per row: ``input_ids`` = window[:-1]; ``labels`` =
    window[1:] with ``ignore_index`` where the target is filler or (``mask_cross_document``) starts a
    document; ``position_ids`` 0 at the row start and at each document start, +1 after;
    ``seg[r, :n_seg[r]]`` (int32 ``[R, seq_len]`` and ``[R]``) the positions where segments start.
    ``labels``, ``position_ids`` or ``seg`` may be None: that output is not computed (and ``n_seg``
    is 0 without ``seg``), which saves its memory traffic.

    Returns how many closed slots the rows need (flagged in ``need``, uint8 per slot); when it is not
    0 those rows hold filler and must be filled again once the slots are open. Raises ValueError when
    a window runs past the table, a slot or dtype is out of range, or an offset lies past its shard.
    Every token written comes from an open slot or is EOD filler.
    """
    token_dtype = np.dtype(token_dtype)
    if token_dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)):
        raise ValueError(f"token_dtype must be uint16 or uint32, got {token_dtype}")
    r_total, s = input_ids.shape
    if input_ids.dtype != np.int64:
        raise ValueError(f"input_ids must be int64, got {input_ids.dtype}")
    for name, a in (("labels", labels), ("position_ids", position_ids)):
        if a is not None and (a.shape != input_ids.shape or a.dtype != np.int64):
            raise ValueError(
                f"{name} must be int64 {input_ids.shape} like input_ids, got {a.dtype} {a.shape}"
            )
    if (seg is not None and seg.shape != (r_total, s)) or n_seg.shape != (r_total,):
        raise ValueError(
            f"seg must be [{r_total}, {s}] and n_seg [{r_total}], got {None if seg is None else seg.shape} "
            f"and {n_seg.shape}"
        )
    if len(rows) != len(offsets):
        raise ValueError(f"{len(rows)} rows but {len(offsets)} offsets")
    if len(rows):
        if int(rows.min()) < 0 or int(rows.max()) >= r_total:
            raise ValueError(f"rows must lie in [0, {r_total}), got {int(rows.min())}..{int(rows.max())}")
        if int(offsets.min()) < int(start[0]) or int(offsets.max()) + s + 1 > int(start[-1]):
            raise ValueError(
                f"windows [{int(offsets.min())}, {int(offsets.max()) + s + 1}) run past the table "
                f"[{int(start[0])}, {int(start[-1])})"
            )
    if len(slot) and (int(slot.min()) < 0 or int(slot.max()) >= len(state)):
        raise ValueError(f"slot ids must lie in [0, {len(state)}), got {int(slot.min())}..{int(slot.max())}")
    one_row = np.empty((1, s), dtype=np.int64)  # stands in for an output that is not wanted
    got = _pack_rows(
        addr, length, state, np.empty(0, token_dtype), slot, src, start, rows, offsets,
        eod, ignore_index, mask_cross_document, input_ids,
        one_row if labels is None else labels,
        one_row if position_ids is None else position_ids,
        np.empty((1, s), dtype=np.int32) if seg is None else seg,
        n_seg, need, labels is not None, position_ids is not None, seg is not None,
    )  # fmt: skip
    if got < 0:
        raise ValueError(f"document {-1 - got} of the table lies past the end of its shard")
    return int(got)


def cu_seqlens(
    seg: np.ndarray, n_seg: np.ndarray, *, n_batches: int, batch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment boundaries per batch from :func:`pack_rows`'s ``seg``/``n_seg`` (rows ``k * batch`` to
    ``(k + 1) * batch - 1`` form batch ``k``). Returns ``(cu, ptr, max_len)``: batch ``k``'s int32
    ``cu_seqlens`` (offsets into its flattened ``[batch * seq_len]`` input, ending with
    ``batch * seq_len``) is ``cu[ptr[k]:ptr[k + 1]]`` and its longest segment ``max_len[k]``.
    Raises ValueError when ``seg`` has fewer than ``n_batches * batch`` rows."""
    rows, s = seg.shape
    if n_batches <= 0 or batch <= 0 or n_batches * batch > rows or len(n_seg) < n_batches * batch:
        raise ValueError(f"{n_batches} batches of {batch} rows do not fit seg of shape {seg.shape}")
    total = int(n_seg[: n_batches * batch].sum()) + n_batches
    cu = np.empty(total, dtype=np.int32)
    ptr = np.empty(n_batches + 1, dtype=np.int64)
    max_len = np.empty(n_batches, dtype=np.int64)
    _cu_seqlens(seg, n_seg, n_batches, batch, s, cu, ptr, max_len)
    return cu, ptr, max_len


def load_kernels() -> None:
    """Compile (or load from numba's on-disk cache) both kernels by running them on a tiny table.

    Loading pulls in numba's array support (and scipy through it): most of a second, which a loader
    spends in a background thread (sharding.loader.kernels) while its first batches come from the
    numpy path. Concurrent callers wait on numba's compiler lock."""
    token = np.arange(4, dtype=np.uint16)
    s, rows = 2, np.zeros(1, dtype=np.int64)
    out = {k: np.empty((1, s), dtype=np.int64) for k in ("input_ids", "labels", "position_ids")}
    seg, n_seg = np.empty((1, s), dtype=np.int32), np.empty(1, dtype=np.int64)
    for dtype in (np.uint16, np.uint32):
        buf = token.astype(dtype)
        pack_rows(
            np.array([buf.ctypes.data], dtype=np.int64),
            np.array([len(buf)], dtype=np.int64),
            np.array([SLOT_OPEN], dtype=np.int8),
            np.dtype(dtype),
            np.zeros(1, dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.array([0, 5], dtype=np.int64),
            rows,
            rows,
            eod=0,
            ignore_index=-100,
            mask_cross_document=True,
            seg=seg,
            n_seg=n_seg,
            need=np.zeros(1, dtype=np.uint8),
            **out,
        )
    cu_seqlens(seg, n_seg, n_batches=1, batch=1)
