"""Incremental dedup of one batch on one machine, exact then near, as the curate stage removes duplicates: the
local counterpart of `dedup.incremental.spark.duplicates_incremental`, and the code its one-task plan runs.

Old documents (kept by earlier runs) come as their exact hashes (clean_docs doc_id, exact_hash) and their
dedup_index rows (doc_id, signature, band_keys). Only the old rows that can meet a new document matter: those
whose exact_hash a new document has, and those sharing a band key with one (`index_candidates`); any other
old row may be left out without changing the result, which is what lets the Spark plan read a bounded
candidate set instead of the whole history.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.config import DedupConfig
from dedup.incremental import kept_against_index, near_duplicates_against_index_local
from dedup.keep import first_of_codes, keep_ranks, parse_keep_rule, require_unique_sorted
from dedup.local import DUPLICATE_SCHEMA, STAT_NAMES, combine_local, component_stats
from dedup.resolve import RESULT_SCHEMA

__all__ = ["band_hits", "duplicates_against_index_local", "exact_duplicates_against_index_local"]


def _unique_sorted(ids: pa.Array) -> np.ndarray:
    """The order that sorts `ids` (strings); ValueError when a doc_id repeats."""
    order = pc.sort_indices(ids).to_numpy()
    require_unique_sorted(ids.take(pa.array(order)))
    return order


def exact_duplicates_against_index_local(new: pa.Table, old: pa.Table, *, keep: list[str]) -> pa.Table:
    """New documents sharing exact_hash with an old kept document or with another new one, less the kept one.

    `new`: doc_id (unique), exact_hash, the keep-rule columns; `old`: doc_id, exact_hash of earlier kept
    documents (ids disjoint from `new`; only rows whose hash a new document has take part). Null hashes
    take no part. A cluster with an old member keeps its smallest old doc_id; a cluster of new documents
    keeps its keep-rule winner. RESULT_SCHEMA rows of the removed new documents, cluster_id the cluster's
    smallest doc_id, sorted by doc_id.
    """
    rule = parse_keep_rule(keep)
    hashed = new.filter(pc.is_valid(new["exact_hash"]))
    old = old.filter(pc.is_valid(old["exact_hash"]))
    old = old.filter(pc.is_in(old["exact_hash"], value_set=hashed["exact_hash"].combine_chunks()))
    if not hashed.num_rows:
        return RESULT_SCHEMA.empty_table()
    ids = pa.concat_arrays([hashed["doc_id"].combine_chunks().cast(pa.string()),
                           old["doc_id"].combine_chunks().cast(pa.string())])
    order = _unique_sorted(ids)
    ids = ids.take(pa.array(order))
    is_old = order >= hashed.num_rows
    hashes = pa.concat_arrays([hashed["exact_hash"].combine_chunks().cast(pa.string()),
                              old["exact_hash"].combine_chunks().cast(pa.string())]).take(pa.array(order))
    codes = pc.dictionary_encode(hashes).indices.to_numpy()
    labels = first_of_codes(codes)  # each row's cluster: its smallest doc_id
    new_pos = np.nonzero(~is_old)[0]
    ranks = np.arange(len(ids), dtype=np.int64) + len(ids)  # old rows by doc_id, after every new row
    ranks[new_pos] = keep_ranks(hashed.take(pa.array(order[new_pos])), rule)
    kept = kept_against_index(labels, is_old, ranks)
    removed = new_pos[kept[new_pos] != new_pos]
    return pa.table([ids.take(pa.array(removed)), ids.take(pa.array(labels[removed])),
                     ids.take(pa.array(kept[removed])), pa.array(np.ones(len(removed)), pa.float64()),
                     pa.array(["exact_hash"] * len(removed), pa.string())], schema=RESULT_SCHEMA)


def band_hits(keys: np.ndarray, new_keys: np.ndarray) -> np.ndarray:
    """Rows of `keys` ((m, bands) int64 band keys of old documents) sharing a bucket (the same key in the
    same band) with a row of `new_keys` ((n, bands)): a boolean mask of length m.

    >>> band_hits(np.array([[1, 2], [3, 4], [5, 2]]), np.array([[5, 9], [7, 2]])).tolist()
    [True, False, True]
    """
    if keys.ndim != 2 or new_keys.ndim != 2 or keys.shape[1] != new_keys.shape[1]:
        raise ValueError(f"band key matrices must be 2-D with equal bands, got {keys.shape} and {new_keys.shape}")
    hit = np.zeros(len(keys), dtype=bool)
    for band in range(keys.shape[1]):
        hit |= np.isin(keys[:, band], new_keys[:, band])
    return hit


def duplicates_against_index_local(new: pa.Table, old_hashes: pa.Table, index: pa.Table, *,
                                   cfg: DedupConfig) -> pa.Table:
    """Exact (cfg.exact) then near (cfg.near) duplicates of a new batch against itself and the earlier kept
    documents: DUPLICATE_SCHEMA rows of the removed new documents, sorted by doc_id; old documents always
    stay kept.

    `new`: doc_id (unique), exact_hash, the keep-rule columns, and text or `signature` (null: no shingles);
    `old_hashes`: doc_id, exact_hash; `index`: dedup_index rows (doc_id, signature, band_keys), either of
    them whole or only the rows that can meet a new document (see the module). Near dedup sees the new
    documents exact dedup kept; exact removals are re-pointed as `dedup.local.combine_local` says. The
    result's schema metadata carries the component report (dedup.local.component_stats).
    """
    exact = (exact_duplicates_against_index_local(new, old_hashes, keep=cfg.keep) if cfg.exact
             else RESULT_SCHEMA.empty_table())
    near = RESULT_SCHEMA.empty_table()
    stats = dict.fromkeys(STAT_NAMES, 0)
    if cfg.near:
        rest = new.filter(pc.invert(pc.is_in(new["doc_id"], value_set=exact["doc_id"].combine_chunks())))
        near = near_duplicates_against_index_local([rest], index, cfg=cfg)
        stats = component_stats(near)
    out = combine_local(exact, near).cast(DUPLICATE_SCHEMA)
    return out.replace_schema_metadata({k: str(v) for k, v in stats.items()})
