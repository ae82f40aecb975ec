"""Packing kernel: token windows with document boundaries -> model inputs (pure numpy)."""

from __future__ import annotations

import numpy as np


def pack_windows(
    windows: np.ndarray,
    doc_start: np.ndarray,
    valid: np.ndarray,
    *,
    ignore_index: int = -100,
    mask_cross_document: bool = True,
) -> dict[str, np.ndarray | int]:
    """Turn ``[B, seq_len + 1]`` token windows into training inputs.

    ``windows`` int64 token ids; ``doc_start`` bool, True where a document's first token sits;
    ``valid`` bool, False for filler tokens (from a skipped corrupt shard). Returns:

    * ``input_ids`` int64 ``[B, seq_len]`` = ``windows[:, :-1]``;
    * ``labels`` int64 ``[B, seq_len]`` = ``windows[:, 1:]``, with ``ignore_index`` where the target is
      filler or, when ``mask_cross_document``, where the target starts a new document (the input there
      is the previous document's EOD);
    * ``position_ids`` int64 ``[B, seq_len]``: 0 at each row start and each document start, +1 after;
    * ``cu_seqlens`` int32 ``[n_segments + 1]``: segment boundaries in the flattened ``[B * seq_len]``
      input, where a segment is a document piece within one row (for variable-length attention that
      must not cross documents or rows); ``max_seqlen`` the longest segment.

    Raises ValueError when shapes disagree or a window is shorter than 2 tokens.
    """
    if windows.ndim != 2 or windows.shape[1] < 2:
        raise ValueError(f"windows must be [B, seq_len + 1] with seq_len >= 1, got shape {windows.shape}")
    if doc_start.shape != windows.shape or valid.shape != windows.shape:
        raise ValueError(
            f"doc_start {doc_start.shape} and valid {valid.shape} must match windows {windows.shape}"
        )
    return _pack(
        np.ascontiguousarray(windows[:, :-1]),
        windows[:, 1:],
        np.ascontiguousarray(doc_start[:, :-1]),
        doc_start[:, 1:],
        valid[:, 1:],
        ignore_index,
        mask_cross_document,
    )


def pack_stream(
    tokens: np.ndarray,
    doc_start: np.ndarray,
    valid: np.ndarray,
    *,
    batch: int,
    ignore_index: int = -100,
    mask_cross_document: bool = True,
) -> dict[str, np.ndarray | int]:
    """:func:`pack_windows` for ``batch`` consecutive windows given as one flat stream slice of
    ``batch * seq_len + 1`` tokens (row ``i`` is ``tokens[i * seq_len : (i + 1) * seq_len + 1]``),
    without materialising the overlapping windows. Raises ValueError on a length that does not fit."""
    n = len(tokens) - 1
    if batch <= 0 or n <= 0 or n % batch or len(doc_start) != n + 1 or len(valid) != n + 1:
        raise ValueError(f"stream of {len(tokens)} tokens does not hold {batch} windows plus one token")
    s = n // batch
    return _pack(
        tokens[:-1].reshape(batch, s),
        tokens[1:].reshape(batch, s),
        doc_start[:-1].reshape(batch, s),
        doc_start[1:].reshape(batch, s),
        valid[1:].reshape(batch, s),
        ignore_index,
        mask_cross_document,
    )


def _pack(
    x: np.ndarray,
    nxt: np.ndarray,
    start_x: np.ndarray,
    start_nxt: np.ndarray,
    valid_nxt: np.ndarray,
    ignore_index: int,
    mask_cross_document: bool,
) -> dict[str, np.ndarray | int]:
    b, s = x.shape
    labels = nxt.copy()
    drop = ~valid_nxt
    if mask_cross_document:
        drop = drop | start_nxt
    labels[drop] = ignore_index
    starts = start_x.reshape(-1).copy()
    starts[::s] = True  # every row starts a segment
    idx = np.arange(b * s, dtype=np.int64)
    # flattened, so the running maximum is one fast 1-D pass
    position_ids = (idx - np.maximum.accumulate(np.where(starts, idx, 0))).reshape(b, s)
    flat = np.flatnonzero(starts)
    cu = np.empty(len(flat) + 1, dtype=np.int32)
    cu[:-1] = flat
    cu[-1] = b * s
    return {
        "input_ids": np.ascontiguousarray(x),
        "labels": labels,
        "position_ids": position_ids,
        "cu_seqlens": cu,
        "max_seqlen": int(np.diff(cu).max()),
    }
