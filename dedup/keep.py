"""The keep rule: which member of a duplicate cluster survives.

A rule is a list of column names, each optionally prefixed with '-' for descending ('+' ascending); nulls sort last
in either direction; `doc_id` (ascending) is appended as the final tie-break when absent, so the choice is
a total order and does not depend on partitioning, batch boundaries or run. The first document in that
order is kept. Default: best `quality_score`, then longest (`n_chars`), then smallest `doc_id`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# pyarrow >= 25 takes null placement per sort key (the global option is deprecated)
_PER_KEY_NULLS = int(pa.__version__.split(".")[0]) >= 25

DEFAULT_KEEP = ["-quality_score", "-n_chars", "doc_id"]


def arrival_first(keep: list[str], arrival: str) -> list[str]:
    """The keep rule with the arrival column (ascending: earliest first) leading it, unless `keep` names it.

    With arrival leading, a document already published keeps priority over a duplicate that arrives later,
    and a full rebuild over the same arrivals keeps what incremental runs kept; documents that arrived
    together are ranked by `keep` as before.

    >>> arrival_first(["-quality_score", "doc_id"], "ingested_at")
    ['ingested_at', '-quality_score', 'doc_id']
    >>> arrival_first(["-ingested_at"], "ingested_at")
    ['-ingested_at']
    """
    named = {item[1:] if item.startswith(("-", "+")) else item for item in keep}
    return list(keep) if arrival in named else [arrival, *keep]


def parse_keep_rule(keep: list[str]) -> list[tuple[str, bool]]:
    """[(column, descending)] with the doc_id tie-break appended. Raises ValueError on an empty name or a
    column given twice."""
    out: list[tuple[str, bool]] = []
    for item in keep:
        name = item[1:] if item.startswith(("-", "+")) else item
        if not name:
            raise ValueError(f"keep rule entry {item!r} names no column")
        if name in (c for c, _ in out):
            raise ValueError(f"keep rule names column {name!r} twice")
        out.append((name, item.startswith("-")))
    if "doc_id" not in (c for c, _ in out):
        out.append(("doc_id", False))
    return out


def keep_ranks(table: pa.Table, rule: list[tuple[str, bool]]) -> np.ndarray:
    """Position of every row in the keep order (0 = kept first); a permutation of 0..n-1.

    Raises ValueError naming a rule column missing from `table`.
    """
    missing = [c for c, _ in rule if c not in table.column_names]
    if missing:
        raise ValueError(f"keep rule columns {missing} are not in the input (columns: {table.column_names})")
    sort_keys = [(c, "descending" if desc else "ascending") for c, desc in rule]
    if _PER_KEY_NULLS:
        order = pc.sort_indices(table, sort_keys=[(c, o, "at_end") for c, o in sort_keys]).to_numpy()
    else:
        order = pc.sort_indices(table, sort_keys=sort_keys, null_placement="at_end").to_numpy()
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order), dtype=np.int64)
    return ranks


def kept_members(labels: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """For each node, the node kept in its component: the member with the smallest keep rank.

    `labels` are component labels (any int ids), `ranks` from `keep_ranks`; both of length n.
    """
    if labels.shape != ranks.shape:
        raise ValueError(f"labels and ranks differ in shape: {labels.shape} vs {ranks.shape}")
    n = len(labels)
    order = np.lexsort((ranks, labels))
    lab = labels[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = lab[1:] != lab[:-1]
    first = order[np.maximum.accumulate(np.where(starts, np.arange(n), 0))]
    kept = np.empty(n, dtype=np.int64)
    kept[order] = first
    return kept


def require_unique_sorted(ids: pa.Array | pa.ChunkedArray) -> None:
    """ValueError when sorted doc_ids `ids` repeat one (neighbours equal)."""
    if len(ids) > 1 and pc.any(pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))).as_py():
        raise ValueError("doc_id values must be unique; the input repeats at least one")


def first_of_codes(codes: np.ndarray) -> np.ndarray:
    """For each row, the first row with the same code (`codes`: dictionary indices): the cluster label."""
    first = np.full(int(codes.max()) + 1 if len(codes) else 0, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return first[codes]
