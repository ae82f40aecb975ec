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
    b, s1 = windows.shape
    s = s1 - 1
    input_ids = np.ascontiguousarray(windows[:, :s])
    labels = windows[:, 1:].copy()
    drop = ~valid[:, 1:]
    if mask_cross_document:
        drop |= doc_start[:, 1:]
    labels[drop] = ignore_index
    starts = doc_start[:, :s].copy()
    starts[:, 0] = True
    cols = np.broadcast_to(np.arange(s, dtype=np.int64), (b, s))
    last_start = np.maximum.accumulate(np.where(starts, cols, 0), axis=1)
    position_ids = cols - last_start
    flat = np.flatnonzero(starts.reshape(-1))
    cu = np.empty(len(flat) + 1, dtype=np.int32)
    cu[:-1] = flat
    cu[-1] = b * s
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "cu_seqlens": cu,
        "max_seqlen": int(np.diff(cu).max()),
    }
