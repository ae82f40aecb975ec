"""Output arrays for packed chunks, reused only once nothing outside the pool can reach them.

Writing a batch into freshly allocated memory costs more than packing it (the kernel page-faults
and zero-fills every page), so chunks are packed into arrays kept by a :class:`BufferPool`. An array
goes back into use only when its reference count shows that no view of it is left: every numpy view
of a chunk holds a reference to the chunk's array (``view.base``), and so does every tensor made by
``torch.from_numpy`` from such a view (through its storage), and every view of that tensor. A batch
the caller still holds, in any of these forms, therefore keeps its memory; one it has dropped is
rewritten. Memory referred to by a bare address alone (``ctypes.data``, ``data_ptr()`` handed to C
code that outlives the Python objects) is not tracked: wrap such uses in a copy.

The reference counts are read under the GIL (CPython 3.11), so a count cannot change while another
thread makes a view: an array with no outside reference has no holder that could make one.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from sharding.loader.fields import OUTPUTS

log = logging.getLogger(__name__)

# references held while an array sits free in the pool: the pool's dict, plus getrefcount's argument
_IDLE_REFS = 2


class BufferPool:
    """Up to ``keep`` sets of int64 ``[rows, seq_len]`` arrays, each set named by ``names`` (a subset
    of :data:`OUTPUTS`, default all of them).

    :meth:`take` returns a free set of the requested shape (allocating one when none is free; it is
    kept when the pool has room, otherwise left to the caller alone). Raises ValueError on a
    non-positive ``keep`` or shape, or on names outside :data:`OUTPUTS`.
    """

    def __init__(self, keep: int, names: tuple[str, ...] = OUTPUTS) -> None:
        if keep <= 0:
            raise ValueError(f"keep must be > 0, got {keep}")
        if not names or not set(names) <= set(OUTPUTS):
            raise ValueError(f"names must be a non-empty subset of {OUTPUTS}, got {names}")
        self.keep = keep
        self.names = tuple(names)
        self._sets: list[dict[str, np.ndarray]] = []

    def take(self, rows: int, seq_len: int) -> dict[str, np.ndarray]:
        if rows <= 0 or seq_len <= 0:
            raise ValueError(f"rows and seq_len must be > 0, got {rows} and {seq_len}")
        for arrays in self._sets:
            # no local name may hold an array here: it would count as an outside reference
            if arrays[self.names[0]].shape == (rows, seq_len) and all(
                sys.getrefcount(arrays[k]) <= _IDLE_REFS for k in self.names
            ):
                return arrays
        fresh = {k: np.empty((rows, seq_len), dtype=np.int64) for k in self.names}
        if len(self._sets) < self.keep:
            self._sets.append(fresh)
        else:
            # all held by the consumer: replace the oldest entry (its holders keep it alive)
            self._sets.pop(0)
            self._sets.append(fresh)
        return fresh
