"""Candidate edges from band keys and connected components over them (numpy/numba, single machine).

Nodes are row indices 0..n-1 that the caller orders by doc_id, so "smallest index" means "smallest doc_id".
"""

from __future__ import annotations

import numba as nb
import numpy as np

# up to this many edges, components are found by numpy rounds (`_min_labels`): for the few edges of an
# incremental batch they cost less than loading the compiled union-find in a process that has not used numba yet
SMALL_GRAPH_EDGES = 20_000


def star_edges(keys: np.ndarray, active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Star edges of LSH buckets: every member of a bucket is linked to the bucket's smallest node.

    `keys` is (n, bands) int64 (row i = node i); rows where `active` is False take no part. Buckets are
    (band, key) pairs, so a bucket of m members gives m - 1 edges, never m(m-1)/2: hot buckets cost linear
    time and memory. Returns (src, dst) int64 arrays with src > dst, sorted and without repeats.
    """
    if keys.ndim != 2:
        raise ValueError(f"keys must be 2-D (n, bands), got shape {keys.shape}")
    nodes = np.arange(keys.shape[0], dtype=np.int64)
    if active is not None:
        nodes = nodes[np.asarray(active, dtype=bool)]
    srcs, dsts = [], []
    for band in range(keys.shape[1]):
        col = keys[nodes, band]
        order = np.lexsort((nodes, col))
        k, v = col[order], nodes[order]
        starts = np.ones(len(k), dtype=bool)
        starts[1:] = k[1:] != k[:-1]
        root = v[np.maximum.accumulate(np.where(starts, np.arange(len(k)), 0))]
        member = ~starts
        srcs.append(v[member])
        dsts.append(root[member])
    src = np.concatenate(srcs) if srcs else np.zeros(0, np.int64)
    dst = np.concatenate(dsts) if dsts else np.zeros(0, np.int64)
    if len(src) == 0:
        return src, dst
    pair = np.unique(np.stack([src, dst], axis=1), axis=0)
    return pair[:, 0].copy(), pair[:, 1].copy()


@nb.njit(nogil=True, cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@nb.njit(nogil=True, cache=True)
def _union_find(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    parent = np.arange(n, dtype=np.int64)
    for i in range(src.shape[0]):
        a = _find(parent, src[i])
        b = _find(parent, dst[i])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    for x in range(n):
        parent[x] = _find(parent, x)
    return parent


def connected_components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Component label of each node 0..n-1: the smallest node of its component (union-find, O(E α(n))).

    Raises ValueError when an edge names a node outside [0, n).
    """
    src = np.ascontiguousarray(src, dtype=np.int64)
    dst = np.ascontiguousarray(dst, dtype=np.int64)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst differ in shape: {src.shape} vs {dst.shape}")
    if len(src) and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise ValueError(f"edge endpoints must lie in [0, {n}), got [{min(src.min(), dst.min())}, "
                         f"{max(src.max(), dst.max())}]")
    if len(src) <= SMALL_GRAPH_EDGES:
        labels = _min_labels(int(n), src, dst)
        if labels is not None:
            return labels
    return _union_find(int(n), src, dst)


def _min_labels(n: int, src: np.ndarray, dst: np.ndarray, max_rounds: int = 64) -> np.ndarray | None:
    """`connected_components` by numpy alone: each round every edge pulls both ends down to the smaller label,
    then every node takes its label's label (pointer jumping). Labels only decrease and always name a node of
    the same component, so at the fixed point each component carries its smallest node. None when
    `max_rounds` did not reach it (a long chain: the caller's union-find takes over)."""
    labels = np.arange(n, dtype=np.int64)
    for _ in range(max_rounds):
        low = np.minimum(labels[src], labels[dst])
        pulled = labels.copy()
        np.minimum.at(pulled, src, low)
        np.minimum.at(pulled, dst, low)
        pulled = pulled[pulled]
        if np.array_equal(pulled, labels):
            return labels
        labels = pulled
    return None
