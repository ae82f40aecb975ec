"""The stream of a source whose manifest grew: which shards each of its epochs reads.

A manifest that *extends* another lists the other's shards first, unchanged (same checksums and
token counts), then new ones. A loader that moves onto a later manifest keeps the stream it has
started: an *era* ``(first_epoch, n_shards)`` says that stream epochs from ``first_epoch`` on read
the first ``n_shards`` shards of the newest manifest, until the next era begins. Each epoch shuffles
its own shards from ``(seed, epoch)``, so the token stream stays a pure function of (sources, seed,
eras): a state that records its eras resumes exactly on any later manifest of the same dataset.

Everything here is pure: numpy arrays and ints in, numbers out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

Era = tuple[int, int]  # (first stream epoch, number of leading shards read from then on)


def check_eras(eras: Sequence[Sequence[int]], n_shards: int) -> tuple[Era, ...]:
    """``eras`` as a tuple of int pairs. Raises ValueError unless the first starts at epoch 0, first
    epochs increase strictly, and every shard count is in ``[1, n_shards]``.

    >>> check_eras([[0, 2], [3, 5]], 5)
    ((0, 2), (3, 5))
    """
    out = tuple((int(e), int(n)) for e, n in eras)
    if not out or out[0][0] != 0:
        raise ValueError(f"eras must start at epoch 0, got {list(out)}")
    for (e0, _), (e1, _) in zip(out[:-1], out[1:], strict=True):
        if e1 <= e0:
            raise ValueError(f"era epochs must increase, got {list(out)}")
    for _, n in out:
        if not 1 <= n <= n_shards:
            raise ValueError(f"an era reads {n} shards but the manifest has {n_shards}")
    return out


def adopt(eras: Sequence[Era], *, current_epoch: int, n_shards: int) -> tuple[Era, ...]:
    """The eras after moving onto a manifest of ``n_shards`` shards while stream epoch
    ``current_epoch`` is being read: epochs up to ``current_epoch`` keep what they read, later ones
    read ``n_shards`` shards. An era planned for a later epoch but not begun is replaced.

    >>> adopt([(0, 4)], current_epoch=2, n_shards=6)
    ((0, 4), (3, 6))
    >>> adopt([(0, 4), (3, 6)], current_epoch=2, n_shards=7)
    ((0, 4), (3, 7))
    >>> adopt([(0, 4)], current_epoch=0, n_shards=4)
    ((0, 4),)
    """
    kept = [e for e in eras if e[0] <= current_epoch]
    if kept[-1][1] != n_shards:
        kept.append((current_epoch + 1, n_shards))
    return tuple(kept)


class StreamEras:
    """Epoch lengths and offsets of one source's stream under ``eras``.

    ``stream_tokens[i]`` is shard ``i``'s stream length (tokens plus one EOD per document) in the
    newest manifest. Epoch ``e`` of era ``k`` is ``length[k]`` tokens long; era ``k`` starts at stream
    offset ``offset[k]``.
    """

    def __init__(self, stream_tokens: np.ndarray, eras: Sequence[Era]) -> None:
        sizes = np.asarray(stream_tokens, dtype=np.int64)
        self.eras = check_eras(eras, len(sizes))
        cum = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.first = np.array([e for e, _ in self.eras], dtype=np.int64)
        self.n = np.array([n for _, n in self.eras], dtype=np.int64)
        self.length = cum[self.n]
        if self.length.min() <= 0:
            raise ValueError("every era must hold at least one token")
        spans = np.diff(self.first) * self.length[:-1]
        self.offset = np.concatenate([[0], np.cumsum(spans)]).astype(np.int64)

    def _era_of_epoch(self, epoch: int) -> int:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        return int(np.searchsorted(self.first, epoch, side="right")) - 1

    def n_shards(self, epoch: int) -> int:
        """Shards read in stream epoch ``epoch`` (the leading ones of the newest manifest)."""
        return int(self.n[self._era_of_epoch(epoch)])

    def epoch_tokens(self, epoch: int) -> int:
        return int(self.length[self._era_of_epoch(epoch)])

    def epoch_start(self, epoch: int) -> int:
        """Stream offset where epoch ``epoch`` starts."""
        k = self._era_of_epoch(epoch)
        return int(self.offset[k] + (epoch - self.first[k]) * self.length[k])

    def locate(self, pos: int) -> tuple[int, int]:
        """(epoch, its start offset) of the epoch holding stream offset ``pos`` (>= 0)."""
        if pos < 0:
            raise ValueError(f"stream offset must be >= 0, got {pos}")
        k = int(np.searchsorted(self.offset, pos, side="right")) - 1
        n, _ = divmod(pos - int(self.offset[k]), int(self.length[k]))
        epoch = int(self.first[k]) + n
        return epoch, self.epoch_start(epoch)


def prefix_identity(manifest: Any, n_shards: int) -> str:
    """sha256 over what fixes the stream of a manifest's first ``n_shards`` shards (dtype, EOD id,
    tokenizer, each shard's checksum and token count); equal to ``manifest.identity()`` for all of
    its shards, and independent of shard paths, so a manifest that moved or renamed its shards still
    extends the one it grew from."""
    h = hashlib.sha256(f"{manifest.token_dtype.str}|{manifest.eod_id}|{manifest.tokenizer_sha256}".encode())
    for digest, n in zip(manifest.sha256[:n_shards], manifest.n_tokens[:n_shards].tolist(), strict=True):
        h.update(f"|{digest}:{n}".encode())
    return h.hexdigest()
