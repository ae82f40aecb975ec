"""Integrity checks run on a shard before its first use: checksum, index, and tar layout.

Nothing here unpickles: indexes load through sharding.format.read_index (``allow_pickle=False``) and tar
headers are parsed as bytes.
"""

from __future__ import annotations

import numpy as np

from sharding.format.tar import BLOCK

_HEADER_ROWS = 16384  # tar headers checked per vectorised pass (bounded memory)


def _padded(n: np.ndarray) -> np.ndarray:
    return (n + BLOCK - 1) // BLOCK * BLOCK


def _octal_fields(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse ustar numeric fields (rows of ASCII octal, optionally space-led and NUL/space-ended).
    Returns (values int64, ok bool) per row."""
    isd = (f >= 48) & (f <= 55)
    idx = np.arange(f.shape[1])
    cnt = isd.sum(axis=1)
    last = np.where(isd, idx, -1).max(axis=1)
    first = np.where(isd, idx, f.shape[1]).min(axis=1)
    before = idx[None, :] < first[:, None]
    after = idx[None, :] > last[:, None]
    ok = (cnt > 0) & (last - first + 1 == cnt)
    ok &= np.all(~before | (f == 32), axis=1) & np.all(~after | (f == 0) | (f == 32), axis=1)
    exp = np.where(isd, last[:, None] - idx[None, :], 0)
    vals = ((f.astype(np.int64) - 48) * isd * (np.int64(8) ** exp)).sum(axis=1)
    return vals, ok


def check_tar_layout(buf: np.ndarray, index: np.ndarray, itemsize: int) -> str | None:
    """Check that a shard's bytes are exactly the tar the index describes. Returns None when sound,
    else the first problem found, in words.

    ``buf`` is the whole shard as uint8; ``index`` is a shard index as ``sharding.format.index_matrix`` gives it. Checks: members
    alternate ``.tokens`` / ``.json`` and tile the file from byte 0 with no gaps or extra members;
    each header is a regular-file ustar header whose size matches the index; no member name (with its
    ustar prefix) is absolute or contains ``..``; the tail after the last member is zero blocks (two
    at least).
    """
    n = len(index)
    tok_off, n_tok, js_off, js_n = (index[:, i] for i in range(4))
    tok_size = n_tok * itemsize
    hdr = np.empty(2 * n, dtype=np.int64)
    hdr[0::2] = tok_off - BLOCK
    hdr[1::2] = js_off - BLOCK
    data_end = np.empty(2 * n, dtype=np.int64)
    data_end[0::2] = tok_off + _padded(tok_size)
    data_end[1::2] = js_off + _padded(js_n)
    if n == 0 or hdr[0] != 0:
        return "the first member does not start at byte 0"
    if np.any(hdr % BLOCK) or np.any(hdr[1:] != data_end[:-1]):
        bad = int(np.flatnonzero((hdr % BLOCK != 0)[1:] | (hdr[1:] != data_end[:-1]))[0]) + 1
        return f"member {bad} does not follow the previous one (gap, overlap or unindexed member)"
    end = int(data_end[-1])
    if end + 2 * BLOCK > len(buf):
        return f"file is {len(buf)} bytes, shorter than its members plus the end-of-archive blocks"
    if np.any(buf[end:]):
        return "bytes after the last member are not zero (unindexed member or trailing garbage)"
    sizes = np.empty(2 * n, dtype=np.int64)
    sizes[0::2] = tok_size
    sizes[1::2] = js_n
    for lo in range(0, 2 * n, _HEADER_ROWS):
        rows = hdr[lo : lo + _HEADER_ROWS]
        headers = buf[rows[:, None] + np.arange(BLOCK)[None, :]]
        problem = _check_headers(headers, sizes[lo : lo + _HEADER_ROWS])
        if problem is not None:
            i, what = problem
            return f"member {lo + i}: {what}"
    return None


_TOKENS_NAME = np.frombuffer(b".tokens\0", dtype=np.uint8)
_JSON_NAME = np.frombuffer(b".json\0", dtype=np.uint8)
_KEY_DIGITS = 12


def _check_names(name: np.ndarray, prefix: np.ndarray) -> tuple[int, str] | None:
    """Member names as the writer makes them: `<key>.tokens` then `<key>.json` with one 12-digit key per
    sample, keys rising by one, no ustar prefix. Anything else (`.pickle`, `.pyd`, a reordered or renamed
    member) is refused before a reader that dispatches on the extension (webdataset's `.decode()`) sees it."""
    rows = len(name)
    suffix = np.empty(rows, dtype=bool)
    suffix[0::2] = np.all(name[0::2, _KEY_DIGITS : _KEY_DIGITS + len(_TOKENS_NAME)] == _TOKENS_NAME, axis=1)
    suffix[1::2] = np.all(name[1::2, _KEY_DIGITS : _KEY_DIGITS + len(_JSON_NAME)] == _JSON_NAME, axis=1)
    digits = name[:, :_KEY_DIGITS]
    ok = suffix & np.all((digits >= 48) & (digits <= 57), axis=1) & np.all(prefix == 0, axis=1)
    keys = ((digits.astype(np.int64) - 48) * (np.int64(10) ** np.arange(_KEY_DIGITS - 1, -1, -1))).sum(axis=1)
    ok[1::2] &= keys[1::2] == keys[0::2][: len(keys[1::2])]
    ok[2::2] &= keys[2::2] == keys[0:-2:2] + 1
    if np.all(ok):
        return None
    i = int(np.flatnonzero(~ok)[0])
    text = bytes(name[i]).split(b"\0", 1)[0].decode("utf-8", "replace")
    want = ".tokens" if i % 2 == 0 else ".json"
    return i, f"member name {text!r} is not <12-digit key>{want} in sample order"


def check_token_ids(buf: np.ndarray, index: np.ndarray, dtype: np.dtype, vocab_size: int) -> str | None:
    """None when every token id in the shard is below `vocab_size`, else the first sample holding one that
    is not (an id the model's embedding has no row for). `buf` and `index` as for `check_tar_layout`, whose
    check must have passed (members aligned to 512-byte blocks)."""
    tok_off, n_tok = index[:, 0].astype(np.int64), index[:, 1].astype(np.int64)
    keep = np.flatnonzero(n_tok > 0)
    if keep.size == 0:
        return None
    itemsize = np.dtype(dtype).itemsize
    ids = buf[: len(buf) // itemsize * itemsize].view(np.dtype(dtype).newbyteorder("<"))
    starts = tok_off[keep] // itemsize
    bounds = np.empty(2 * keep.size, dtype=np.int64)
    bounds[0::2], bounds[1::2] = starts, starts + n_tok[keep]
    if bounds[-1] >= len(ids):  # reduceat needs every index inside the array
        bounds = bounds[:-1]
    highest = np.maximum.reduceat(ids, bounds)[0::2]
    if bounds.size % 2:  # the last region ran to the end of the view: its max is the tail's
        highest[-1] = ids[starts[-1] : starts[-1] + n_tok[keep][-1]].max()
    over = np.flatnonzero(highest >= vocab_size)
    if over.size == 0:
        return None
    sample = int(keep[over[0]])
    return f"sample {sample}: token id {int(highest[over[0]])} >= vocab_size {vocab_size}"


def _check_headers(headers: np.ndarray, sizes: np.ndarray) -> tuple[int, str] | None:
    name = headers[:, 0:100]
    prefix = headers[:, 345:500]
    flag = headers[:, 156]
    if not np.all((flag == 48) | (flag == 0)):
        return int(np.flatnonzero((flag != 48) & (flag != 0))[0]), "not a regular file"
    for field, what in ((name, "name"), (prefix, "prefix")):
        absolute = field[:, 0] == 47
        dotdot = np.any((field[:, :-1] == 46) & (field[:, 1:] == 46), axis=1)
        if np.any(absolute | dotdot):
            i = int(np.flatnonzero(absolute | dotdot)[0])
            text = bytes(field[i]).split(b"\0", 1)[0].decode("utf-8", "replace")
            return i, f"unsafe {what} {text!r} (absolute or contains '..')"
    if not np.all(name[:, 0] != 0):
        return int(np.flatnonzero(name[:, 0] == 0)[0]), "empty member name"
    problem = _check_names(name, prefix)
    if problem is not None:
        return problem
    vals, ok = _octal_fields(headers[:, 124:136])
    if not np.all(ok & (vals == sizes)):
        i = int(np.flatnonzero(~ok | (vals != sizes))[0])
        return (
            i,
            f"header size {int(vals[i]) if ok[i] else 'unreadable'} does not match the index ({int(sizes[i])})",
        )
    return None
