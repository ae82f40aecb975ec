"""Removal only with direct evidence: LSH clusters resolved member by member against the kept document.

Connected components of verified LSH edges chain documents together: A~B and B~C put A and C in one
cluster even when A and C share little. The old rule removed every member but the keep-rule winner, so a
removal could rest on a chain of edges and a weak hub could pull unrelated documents into one cluster.
`resolve_clusters` instead removes a member only when its *own* similarity to the document kept in its
place reaches `floor`:

1. components of the edges among the still-undecided ("live") nodes;
2. in each component the winner (pinned nodes first, then keep rank) is kept;
3. every other member is compared with its winner; at or above `floor` it is removed as the winner's
   duplicate, below it stays live (pinned members always stay live: they are never removed);
4. repeat on the live nodes and the edges between them, until no edge is left; a live node without an
   edge left is kept (its own cluster).

Each round keeps at least one endpoint of some edge per component, so the edge count strictly falls and the
loop ends after at most (edges) rounds (in practice a handful). The result depends only on the node order,
the edge set, the ranks and the similarities, never on partitioning or batch boundaries; the local engine
and the Spark engine (one component per task) call this same function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dedup.components import connected_components
from dedup.keep import kept_members
from dedup.shingle import ShingleMode, shingle_hashes

Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]
VERIFIED_BY = ("exact_hash", "signature", "shingles")
# one row per removed document: its final cluster (smallest doc_id of the kept document and the documents
# removed in its favour), the kept document, the removed one's similarity to it and where that came from
RESULT_SCHEMA = pa.schema([("doc_id", pa.string()), ("cluster_id", pa.string()), ("kept_doc_id", pa.string()),
                           ("similarity", pa.float64()), ("verified_by", pa.string())])


@dataclass(frozen=True)
class Resolution:
    """The outcome for nodes 0..n-1.

    kept: the node kept in each node's place (itself when it is kept); similarity: a removed node's
    similarity to its kept node (NaN for kept nodes); cluster: the smallest node of each node's final
    cluster (a kept node and the nodes removed in its favour); rounds: rounds the resolution took;
    component_sizes: sizes of the components of the whole edge set (first round), descending.
    """

    kept: np.ndarray
    similarity: np.ndarray
    cluster: np.ndarray
    rounds: int
    component_sizes: np.ndarray

    @property
    def removed(self) -> np.ndarray:
        """Indices of the removed nodes, ascending."""
        return np.nonzero(self.kept != np.arange(len(self.kept)))[0]

    def cluster_sizes(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Per node: for a kept node the summed weight of its final cluster (itself included; weight 1 each
        by default), 0 for a removed node."""
        w = np.ones(len(self.kept), dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
        sizes = np.zeros(len(self.kept), dtype=np.int64)
        np.add.at(sizes, self.kept, w)
        return sizes


def resolve_clusters(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    ranks: np.ndarray,
    similarity: Similarity,
    floor: float,
    pinned: np.ndarray | None = None,
) -> Resolution:
    """Resolve the clusters of the graph (nodes 0..n-1, edges src-dst) by direct evidence (see the module).

    `ranks`: keep-rule positions (distinct ints, smaller wins); `similarity(a, b)`: float similarities of
    the node pairs a[i], b[i]; `floor`: the least similarity to the kept node that removes a member;
    `pinned`: nodes that are never removed (earlier kept documents in incremental dedup). Raises ValueError
    on shape mismatch or an endpoint outside [0, n).

    >>> sims = {(1, 0): 0.9, (2, 0): 0.5, (2, 1): 0.9}  # a chain 0~1~2 where 0 and 2 differ
    >>> r = resolve_clusters(3, np.array([1, 2]), np.array([0, 1]), np.arange(3),
    ...                      lambda a, b: np.array([sims[int(x), int(y)] for x, y in zip(a, b)]), 0.8)
    >>> r.kept.tolist(), r.cluster.tolist(), r.rounds
    ([0, 0, 2], [0, 0, 2], 1)
    """
    ranks = np.asarray(ranks)
    if ranks.shape != (n,):
        raise ValueError(f"ranks must have shape ({n},), got {ranks.shape}")
    pin = np.zeros(n, dtype=bool) if pinned is None else np.asarray(pinned, dtype=bool)
    if pin.shape != (n,):
        raise ValueError(f"pinned must have shape ({n},), got {pin.shape}")
    src = np.ascontiguousarray(src, dtype=np.int64)
    dst = np.ascontiguousarray(dst, dtype=np.int64)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst differ in shape: {src.shape} vs {dst.shape}")
    if len(src) and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise ValueError(f"edge endpoints must lie in [0, {n})")
    # one total order: pinned nodes before the others, then the keep rule
    priority = np.empty(n, dtype=np.int64)
    priority[np.lexsort((ranks, ~pin))] = np.arange(n, dtype=np.int64)
    kept = np.arange(n, dtype=np.int64)
    sim = np.full(n, np.nan)
    live = np.ones(n, dtype=bool)
    rounds = 0
    sizes = np.zeros(0, dtype=np.int64)
    while True:
        on = live[src] & live[dst]
        src, dst = src[on], dst[on]
        if len(src) == 0:
            break
        rounds += 1
        nodes = np.unique(np.concatenate([src, dst]))
        labels = connected_components(len(nodes), np.searchsorted(nodes, src), np.searchsorted(nodes, dst))
        winner = kept_members(labels, priority[nodes])
        if rounds == 1:
            sizes = -np.sort(-np.bincount(labels)[np.unique(labels)])
        member = np.nonzero(winner != np.arange(len(nodes)))[0]
        live[nodes[winner == np.arange(len(nodes))]] = False
        member = member[~pin[nodes[member]]]
        if len(member):
            a, b = nodes[member], nodes[winner[member]]
            s = np.asarray(similarity(a, b), dtype=np.float64)
            ok = s >= floor
            kept[a[ok]], sim[a[ok]] = b[ok], s[ok]
            live[a[ok]] = False
    cluster = np.arange(n, dtype=np.int64)
    np.minimum.at(cluster, kept, np.arange(n, dtype=np.int64))
    return Resolution(kept=kept, similarity=sim, cluster=cluster[kept], rounds=rounds, component_sizes=sizes)


def signature_similarity(signatures: np.ndarray) -> Similarity:
    """Similarity of node pairs estimated from their MinHash signatures (fraction of equal slots)."""

    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.mean(signatures[a] == signatures[b], axis=1)

    return similarity


def shingle_similarity(hashes: np.ndarray, offsets: np.ndarray) -> Similarity:
    """Exact Jaccard similarity of node pairs' shingle sets (64-bit shingle hashes, `dedup.shingle.shingle_hashes`
    layout: node i's shingles are hashes[offsets[i]:offsets[i+1]], repeats allowed). Two empty sets have
    similarity 0. Cost: one sorted intersection per pair asked for, so only candidate pairs pay it."""
    cache: dict[int, np.ndarray] = {}

    def shingles(i: int) -> np.ndarray:
        got = cache.get(i)
        if got is None:
            got = cache[i] = np.unique(hashes[offsets[i]:offsets[i + 1]])
        return got

    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty(len(a), dtype=np.float64)
        for k, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
            sa, sb = shingles(x), shingles(y)
            inter = len(np.intersect1d(sa, sb, assume_unique=True))
            union = len(sa) + len(sb) - inter
            out[k] = inter / union if union else 0.0
        return out

    return similarity


def standard_error(similarity: float, num_perm: int) -> float:
    """Standard error of the MinHash estimate of a Jaccard similarity: sqrt(J (1 - J) / num_perm).

    >>> round(standard_error(0.8, 128), 4)
    0.0354
    """
    if not 0.0 <= similarity <= 1.0 or num_perm < 1:
        raise ValueError(f"need 0 <= similarity <= 1 and num_perm >= 1, got {similarity!r}, {num_perm!r}")
    return float(np.sqrt(similarity * (1.0 - similarity) / num_perm))


def resolve_near(
    signatures: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    ranks: np.ndarray,
    *,
    floor: float,
    verify: str,
    texts: pa.Array | pa.ChunkedArray | None = None,
    ngram: int = 5,
    mode: ShingleMode = "word",
    pinned: np.ndarray | None = None,
) -> Resolution:
    """`resolve_clusters` with the engine's similarity: exact shingle Jaccard when verify == 'shingles' (the
    texts of the nodes that have an edge are shingled, no others), else the signature estimate."""
    n = len(signatures)
    if verify != "shingles":
        return resolve_clusters(n, src, dst, ranks, signature_similarity(signatures), floor, pinned)
    if texts is None or len(texts) != n:
        raise ValueError("verify='shingles' needs the texts of all nodes")
    sub = np.unique(np.concatenate([src, dst])).astype(np.int64)
    hashes, offsets = shingle_hashes(texts.take(pa.array(sub)), ngram=ngram, mode=mode)
    exact = shingle_similarity(hashes, offsets)

    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return exact(np.searchsorted(sub, a), np.searchsorted(sub, b))

    return resolve_clusters(n, src, dst, ranks, similarity, floor, pinned)


def removed_rows(ids: pa.Array, res: Resolution, verified_by: str, rows: np.ndarray | None = None) -> pa.Table:
    """RESULT_SCHEMA rows of the removed nodes (those in `rows` when given; `ids` index the nodes)."""
    removed = res.removed if rows is None else rows[res.kept[rows] != rows]
    return pa.table([ids.take(pa.array(removed)), ids.take(pa.array(res.cluster[removed])),
                     ids.take(pa.array(res.kept[removed])), pa.array(res.similarity[removed], pa.float64()),
                     pa.array([verified_by] * len(removed), pa.string())], schema=RESULT_SCHEMA)
