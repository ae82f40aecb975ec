"""Pure order and partition functions of the streaming loader.

Everything here is a function of plain integers and numpy arrays: the same arguments give the same
arrays on every machine, whatever the number of ranks or workers. The loader builds one global,
infinite sequence of token windows from these functions and hands each rank a disjoint slice of it.

Vocabulary used throughout:

* a *source* is one shard manifest; its *stream* is its documents, each followed by one EOD token,
  in the order of the current epoch, epochs concatenated end to end (so nothing is dropped at an
  epoch boundary);
* a *window* is ``seq_len + 1`` consecutive stream tokens; window ``j`` of a source starts at token
  ``j * seq_len`` (consecutive windows overlap by the one token that serves as the last label);
* a *block* is a group of ``block_shards`` consecutive shards in the epoch's shard permutation;
  documents are shuffled within a block, so a reader touches one block of shards at a time;
* a *global window* is one row of one global batch; global step ``k`` owns global windows
  ``[k * G, (k + 1) * G)`` with ``G = batch_size * world_size``, and rank ``r`` owns the ``r``-th run of
  ``batch_size`` of them.
"""

from __future__ import annotations

import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
# Salts keep the random streams of different purposes apart for the same user seed.
_SALT_SHARDS = 1
_SALT_DOCS = 2
_SALT_MIX = 3


def _check_nonneg(**values: int) -> None:
    for name, value in values.items():
        if int(value) < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def shard_permutation(n_shards: int, *, seed: int, epoch: int, stream: int = 0) -> np.ndarray:
    """Order in which the shards of one source are read in one epoch.

    Returns an int64 permutation of ``range(n_shards)``, a pure function of its arguments. ``stream``
    separates sources mixed under the same seed. Raises ValueError on a negative argument or
    ``n_shards == 0``.
    """
    _check_nonneg(n_shards=n_shards, seed=seed, epoch=epoch, stream=stream)
    if n_shards == 0:
        raise ValueError("n_shards must be > 0, got 0")
    rng = np.random.default_rng([seed, _SALT_SHARDS, stream, epoch])
    return rng.permutation(n_shards).astype(np.int64)


def block_starts(n_shards: int, block_shards: int) -> np.ndarray:
    """Positions (into the shard permutation) where each block starts, plus ``n_shards`` at the end.

    >>> block_starts(5, 2).tolist()
    [0, 2, 4, 5]
    """
    if block_shards <= 0:
        raise ValueError(f"block_shards must be > 0, got {block_shards}")
    _check_nonneg(n_shards=n_shards)
    return np.append(np.arange(0, n_shards, block_shards, dtype=np.int64), np.int64(n_shards))


def block_token_offsets(shard_stream_tokens: np.ndarray, order: np.ndarray, block_shards: int) -> np.ndarray:
    """Stream offset (in tokens) where each block of an epoch starts, plus the epoch's length at the end.

    ``shard_stream_tokens[i]`` is shard ``i``'s stream length (its tokens plus one EOD per document);
    ``order`` is the epoch's shard permutation. Returns int64 of length ``n_blocks + 1``, starting at 0.
    """
    sizes = np.asarray(shard_stream_tokens, dtype=np.int64)[np.asarray(order, dtype=np.int64)]
    if sizes.size and sizes.min() < 0:
        raise ValueError(f"shard_stream_tokens must be >= 0, got min {sizes.min()}")
    starts = block_starts(len(sizes), block_shards)
    cum = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    return cum[starts]


def document_permutation(n_docs: int, *, seed: int, epoch: int, block: int, stream: int = 0) -> np.ndarray:
    """Order of the ``n_docs`` documents of one block in one epoch: an int64 permutation, pure in its args."""
    _check_nonneg(n_docs=n_docs, seed=seed, epoch=epoch, block=block, stream=stream)
    rng = np.random.default_rng([seed, _SALT_DOCS, stream, epoch, block])
    return rng.permutation(n_docs).astype(np.int64)


def rank_windows(step: int, *, rank: int, batch_size: int, world_size: int) -> tuple[int, int]:
    """Global window range ``[start, stop)`` that ``rank`` reads at global ``step``.

    Ranks read disjoint, adjacent runs of ``batch_size`` windows, and every rank has the same number
    of steps by construction, so no collective is needed at an epoch's end.

    >>> rank_windows(3, rank=1, batch_size=2, world_size=4)
    (26, 28)
    """
    _check_nonneg(step=step, rank=rank)
    if batch_size <= 0 or world_size <= 0:
        raise ValueError(f"batch_size and world_size must be > 0, got {batch_size} and {world_size}")
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size={world_size}, got {rank}")
    start = (step * world_size + rank) * batch_size
    return start, start + batch_size


def worker_steps(first_step: int, stop_step: int, *, worker: int, num_workers: int) -> range:
    """Steps of ``[first_step, stop_step)`` that DataLoader worker ``worker`` produces: every
    ``num_workers``-th step, so the DataLoader's round-robin over workers yields them in step order.

    >>> list(worker_steps(5, 12, worker=1, num_workers=3))
    [6, 9]
    """
    _check_nonneg(first_step=first_step, worker=worker)
    if num_workers <= 0 or worker >= num_workers:
        raise ValueError(
            f"worker must be in [0, num_workers), got worker={worker}, num_workers={num_workers}"
        )
    return range(first_step + worker, max(first_step, stop_step), num_workers)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised splitmix64 finaliser (uint64 in, uint64 out); wraps modulo 2**64 by design."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def normalize_weights(weights: np.ndarray | list[float]) -> np.ndarray:
    """Mixing weights as float64 summing to 1. Raises ValueError on an empty, negative, non-finite or
    all-zero vector."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D vector, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all zero, got {w.tolist()}")
    return w / w.sum()


def mixture_block_counts(
    weights: np.ndarray | list[float], *, block_windows: int, seed: int, first_block: int, n_blocks: int
) -> np.ndarray:
    """How many windows each source gets in each mixing block ``first_block .. first_block + n_blocks - 1``.

    Each block of ``block_windows`` global windows gives source ``s`` ``floor(block_windows * w_s)``
    windows, and the few left over go to distinct sources drawn with probability proportional to the
    fractional parts (Gumbel top-k keyed by a hash of ``(seed, block, s)``), so counts are exact per
    block and unbiased over many. Returns int64 ``[n_blocks, n_sources]``; every row sums to
    ``block_windows``.
    """
    w = normalize_weights(weights)
    _check_nonneg(seed=seed, first_block=first_block, n_blocks=n_blocks)
    if block_windows <= 0:
        raise ValueError(f"block_windows must be > 0, got {block_windows}")
    ideal = w * block_windows
    base = np.floor(ideal).astype(np.int64)
    left = int(block_windows - base.sum())
    counts = np.broadcast_to(base, (n_blocks, len(w))).copy()
    if left == 0 or n_blocks == 0:
        return counts
    frac = ideal - base
    blocks = np.arange(first_block, first_block + n_blocks, dtype=np.uint64)[:, None]
    src = np.arange(len(w), dtype=np.uint64)[None, :]
    key = _splitmix64(
        _splitmix64(np.asarray(np.uint64(seed) ^ np.uint64(_SALT_MIX << 56))) ^ (blocks << np.uint64(20)) ^ src
    )
    u = (key >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    u = np.clip(u, 1e-300, 1.0 - 1e-16)
    with np.errstate(divide="ignore"):
        score = np.where(frac > 0, np.log(frac) - np.log(-np.log(u)), -np.inf)
    top = np.argsort(-score, axis=1, kind="stable")[:, :left]
    np.add.at(counts, (np.arange(n_blocks)[:, None], top), 1)
    return counts


def mixture_block_sources(counts_row: np.ndarray, *, seed: int, block: int) -> np.ndarray:
    """Source id of each window of one mixing block: the multiset given by ``counts_row`` in an order
    that is a pure function of ``(seed, block)``. Returns int64 of length ``counts_row.sum()``."""
    _check_nonneg(seed=seed, block=block)
    ids = np.repeat(np.arange(len(counts_row), dtype=np.int64), np.asarray(counts_row, dtype=np.int64))
    return np.random.default_rng([seed, _SALT_MIX, block]).permutation(ids)
