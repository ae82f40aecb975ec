"""Exact dedup key: a 128-bit MurmurHash3 (x64_128, seed 0) of each document's UTF-8 bytes.

The text is hashed as given: the curate stage normalizes it (NFC, whitespace) before hashing, so two
documents share a key exactly when their normalized texts are equal (up to a 2^-128 collision chance).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pyarrow as pa

from dedup.arrow_buffers import strings_from_fixed_width, utf8_buffers
from dedup.shingle import fmix64

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@nb.njit(inline="always")
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@nb.njit(inline="always")
def _load(data: np.ndarray, pos: int, count: int) -> np.uint64:
    """Little-endian load of `count` (<= 8) bytes starting at data[pos]."""
    v = np.uint64(0)
    for i in range(count):
        v |= np.uint64(data[pos + i]) << np.uint64(8 * i)
    return v


@nb.njit(nogil=True, cache=True)
def _murmur3_128(data: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    c1 = np.uint64(0x87C37B91114253D5)
    c2 = np.uint64(0x4CF5AD432745937F)
    for d in range(offsets.shape[0] - 1):
        start = offsets[d]
        length = offsets[d + 1] - start
        h1 = np.uint64(0)
        h2 = np.uint64(0)
        nblocks = length // 16
        for i in range(nblocks):
            p = start + i * 16
            k1 = _load(data, p, 8)
            k2 = _load(data, p + 8, 8)
            k1 *= c1
            k1 = _rotl(k1, 31)
            k1 *= c2
            h1 ^= k1
            h1 = _rotl(h1, 27)
            h1 += h2
            h1 = h1 * np.uint64(5) + np.uint64(0x52DCE729)
            k2 *= c2
            k2 = _rotl(k2, 33)
            k2 *= c1
            h2 ^= k2
            h2 = _rotl(h2, 31)
            h2 += h1
            h2 = h2 * np.uint64(5) + np.uint64(0x38495AB5)
        tail = start + nblocks * 16
        rest = length & 15
        if rest > 8:
            k2 = _load(data, tail + 8, rest - 8)
            k2 *= c2
            k2 = _rotl(k2, 33)
            k2 *= c1
            h2 ^= k2
        if rest > 0:
            k1 = _load(data, tail, min(rest, 8))
            k1 *= c1
            k1 = _rotl(k1, 31)
            k1 *= c2
            h1 ^= k1
        h1 ^= np.uint64(length)
        h2 ^= np.uint64(length)
        h1 += h2
        h2 += h1
        h1 = fmix64(h1)
        h2 = fmix64(h2)
        h1 += h2
        h2 += h1
        for i in range(8):
            out[d, i] = np.uint8((h1 >> np.uint64(8 * i)) & np.uint64(0xFF))
            out[d, 8 + i] = np.uint8((h2 >> np.uint64(8 * i)) & np.uint64(0xFF))


def text_hash128(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """MurmurHash3 x64_128 (seed 0) of each text's UTF-8 bytes, as an (n, 16) uint8 array.

    The 16 bytes are the canonical digest (h1 then h2, little-endian), the same as `mmh3.hash_bytes`.
    Raises ValueError for a non-string array or null texts.
    """
    data, offsets = utf8_buffers(texts)
    out = np.empty((len(offsets) - 1, 16), dtype=np.uint8)
    _murmur3_128(data, offsets, out)
    return out


def text_hash128_hex(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The 128-bit exact-dedup key of each text as 32 lowercase hex digits (an Arrow string array).

    >>> text_hash128_hex(pa.array(["hello"])).to_pylist()
    ['029bbd41b3a7d8cb191dae486a901e5b']
    """
    digest = text_hash128(texts)
    chars = np.empty((digest.shape[0], 32), dtype=np.uint8)
    chars[:, 0::2] = _HEX[digest >> 4]
    chars[:, 1::2] = _HEX[digest & 15]
    return strings_from_fixed_width(chars)
