"""Zero-copy access to the UTF-8 bytes and offsets of an Arrow string array, for numba kernels."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def utf8_buffers(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 data (uint8) and offsets (int64, length n+1, relative to data) of a string array.

    Accepts string, large_string and string_view arrays (chunked or not); nothing is copied for a single
    chunk of string/large_string. Raises ValueError for a non-string type or for null values: every document
    must have a text (an empty string is fine).
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if pa.types.is_string_view(texts.type):
        texts = texts.cast(pa.large_string())
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise ValueError(f"texts must be an Arrow string array, got type {texts.type}")
    if texts.null_count:
        raise ValueError(f"texts has {texts.null_count} null values; pass empty strings instead")
    n = len(texts)
    bufs = texts.buffers()
    off_dtype = np.int32 if pa.types.is_string(texts.type) else np.int64
    if n == 0 or bufs[1] is None:
        return np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64)
    offsets = np.frombuffer(bufs[1], dtype=off_dtype, count=texts.offset + n + 1)[texts.offset :]
    start = int(offsets[0])
    data = (
        np.frombuffer(bufs[2], dtype=np.uint8, count=int(offsets[-1]))[start:]
        if bufs[2] is not None
        else np.zeros(0, dtype=np.uint8)
    )
    return data, offsets.astype(np.int64) - start


def strings_from_fixed_width(chars: np.ndarray) -> pa.Array:
    """An Arrow string array from an (n, w) uint8 array of ASCII characters, one row per string."""
    n, w = chars.shape
    offsets = np.arange(n + 1, dtype=np.int32) * w
    data = np.ascontiguousarray(chars).reshape(-1)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
