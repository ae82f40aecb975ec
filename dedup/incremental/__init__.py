"""Incremental dedup against earlier dataset versions: the pure parts (no Spark).

A new batch is deduplicated against itself and against the documents kept by earlier runs, whose MinHash
signatures and band keys live in the `dedup_index` table (schemas/dedup_index.py). The rule: an earlier kept
document always stays kept; a new document in a cluster with one becomes its duplicate; clusters made only of
new documents follow the ordinary keep rule (dedup.keep). Earlier *removed* documents are not in the index,
so a new document is matched against what the dataset actually contains, not against what was dropped.

`index_params` fingerprints the parameters band keys depend on; `kept_against_index` is the keep rule with
old documents pinned; `near_duplicates_against_index_local` is the single-machine engine (the Spark one is
dedup/incremental/spark.py), for small corpora and as the reference in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.components import star_edges
from dedup.config import DedupConfig
from dedup.keep import keep_ranks, kept_members, parse_keep_rule, require_unique_sorted
from dedup.lsh import band_keys, resolve_bands
from dedup.minhash import is_empty, signature_jaccard
from dedup.resolve import RESULT_SCHEMA, removed_rows, resolve_near

log = logging.getLogger(__name__)


def index_params(*, num_perm: int, bands: int, rows: int, ngram: int, shingle: str, seed: int) -> str:
    """A canonical string of everything a band key or signature depends on; two indexes are comparable
    exactly when their strings are equal.

    >>> index_params(num_perm=128, bands=16, rows=8, ngram=5, shingle="word", seed=42)
    'num_perm=128,bands=16,rows=8,ngram=5,shingle=word,seed=42'

    Raises ValueError when bands * rows exceeds num_perm or a count is not positive.
    """
    for name, value in (("num_perm", num_perm), ("bands", bands), ("rows", rows), ("ngram", ngram)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    if bands * rows > num_perm:
        raise ValueError(f"bands * rows must be <= num_perm={num_perm}, got {bands} x {rows}")
    return f"num_perm={num_perm},bands={bands},rows={rows},ngram={ngram},shingle={shingle},seed={seed}"


def dedup_index_params(cfg: DedupConfig) -> str:
    """`index_params` of a dedup configuration (bands and rows resolved as the engine resolves them)."""
    bands, rows = resolve_bands(
        cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.false_positive_weight, cfg.false_negative_weight
    )
    return index_params(num_perm=cfg.num_perm, bands=bands, rows=rows, ngram=cfg.ngram, shingle=cfg.shingle,
                        seed=cfg.seed)


def kept_against_index(labels: np.ndarray, is_old: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """For each node, the node kept in its place: old nodes keep themselves; a new node in a component with
    old nodes maps to the old member of smallest rank; otherwise to its component's member of smallest rank.

    `labels` are component labels, `is_old` a boolean mask, `ranks` keep-rule positions (any distinct ints,
    smaller wins); all of length n. Returns an int64 array of node indices. Raises ValueError on shape
    mismatch.

    >>> kept_against_index(np.array([0, 0, 0, 3, 3]), np.array([False, True, False, False, False]),
    ...                    np.array([0, 4, 1, 3, 2])).tolist()
    [1, 1, 1, 4, 4]
    """
    labels = np.asarray(labels)
    is_old = np.asarray(is_old, dtype=bool)
    ranks = np.asarray(ranks)
    if not labels.shape == is_old.shape == ranks.shape or labels.ndim != 1:
        raise ValueError(f"labels, is_old and ranks must be 1-D of one length, got {labels.shape}, "
                         f"{is_old.shape}, {ranks.shape}")
    # old nodes first, then by rank: a total order whose first member per component is the winner
    order = np.lexsort((ranks, ~is_old))
    pinned = np.empty(len(order), dtype=np.int64)
    pinned[order] = np.arange(len(order), dtype=np.int64)
    kept = kept_members(labels, pinned)
    kept[is_old] = np.nonzero(is_old)[0]
    return kept


def signature_matrix(column: pa.Array | pa.ChunkedArray, num_perm: int) -> np.ndarray:
    """The (n, num_perm) uint32 matrix of a binary column of signatures (4 * num_perm little-endian bytes each),
    read from the Arrow buffers without a per-row copy.

    Raises ValueError on a null or a value of another length.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.binary())
    return signature_view(column, num_perm).astype(np.uint32)


def signature_view(column: pa.Array, num_perm: int) -> np.ndarray:
    """`signature_matrix` of one Arrow array as a read-only view of its buffers (no copy at all): valid while
    the array lives.

    Raises ValueError on a null or a value of another length.
    """
    if column.null_count:
        raise ValueError(f"signature column has {column.null_count} nulls")
    n = len(column)
    if n == 0:
        return np.empty((0, num_perm), dtype=np.uint32)
    wide = pa.types.is_large_binary(column.type)
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64 if wide else np.int32,
                            count=column.offset + n + 1)[column.offset:]
    lengths = np.diff(offsets)
    if np.any(lengths != 4 * num_perm):
        raise ValueError(f"signatures must be {4 * num_perm} bytes each (num_perm={num_perm}), "
                         f"got lengths {sorted(set(lengths.tolist()))[:5]}")
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return data.view("<u4").reshape(n, num_perm)


def _band_key_matrix(column: pa.Array | pa.ChunkedArray, bands: int) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if column.null_count or (len(lengths) and np.any(lengths != bands)):
        raise ValueError(f"band_keys must hold {bands} keys per row (dedup parameters changed?)")
    return pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.int64).reshape(len(column), bands)


def own_band_keys(table: pa.Table, sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """The (n, bands) int64 band keys of a batch's rows with signatures `sig`: its own `band_keys` column where
    the row has one (curate's filter pass computes them with the signature, with the same parameters), else
    `dedup.lsh.band_keys` of the signature; a row with neither (an empty signature: no shingles) gets zeros,
    and takes no part in any bucket. Reading the column is no second pass over the signatures, and on the
    driver it loads no numba kernel. Raises ValueError when a row's keys are not `bands` long."""
    if "band_keys" not in table.column_names:
        return band_keys(sig, bands, rows)
    column = table["band_keys"].combine_chunks() if table.num_rows else pa.array([], pa.list_(pa.int64()))
    present = pc.is_valid(column).to_numpy(zero_copy_only=False)
    out = np.zeros((len(column), bands), dtype=np.int64)
    if present.any():
        out[present] = _band_key_matrix(column.filter(pa.array(present)), bands)
    missing = ~present & ~is_empty(sig)
    if missing.any():
        out[missing] = band_keys(sig[missing], bands, rows)
    return out


def near_duplicates_against_index_local(
    batches: Iterable[pa.RecordBatch | pa.Table], index: pa.Table, *, cfg: DedupConfig
) -> pa.Table:
    """Near duplicates of a new batch among itself and against an index of earlier kept documents.

    `batches`: doc_id (unique), text or its `signature` (dedup.local.signatures_of), optionally its
    `band_keys` (`own_band_keys`), and the keep-rule columns of cfg.keep. `index`: dedup_index rows
    (doc_id, signature, band_keys) computed with the same parameters. New and index doc_ids must be
    disjoint. Edges between two index documents are ignored (they were settled when kept). Clusters are
    resolved by direct evidence (dedup.resolve) with the index documents pinned: they are kept first and never
    removed. Returns RESULT_SCHEMA rows of the removed *new* documents, sorted by doc_id. verify='shingles'
    is not available here (the index holds no texts): signatures give the evidence. The result's schema
    metadata carries the component report (dedup.local.component_stats). Any index rows that share no band
    key with a new document may be left out of `index` without changing the result. Raises ValueError on
    overlapping ids or an index of other parameters.
    """
    from dedup.local import signatures_of  # dedup.local imports this package

    rule = parse_keep_rule(cfg.keep)
    bands, rows = resolve_bands(
        cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.false_positive_weight, cfg.false_negative_weight
    )
    cols = ["doc_id", *[c for c, _ in rule if c != "doc_id"]]
    metas, sigs, keys_of = [], [], []
    for batch in batches:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        sigs.append(signatures_of(table, cfg))
        keys_of.append(own_band_keys(table, sigs[-1], bands, rows))
        metas.append(table.select(cols))
    if not metas:
        return RESULT_SCHEMA.empty_table()
    new = pa.concat_tables(metas)
    new_sig = np.concatenate(sigs)
    old_ids = index["doc_id"].combine_chunks().cast(pa.string())
    old_sig = signature_matrix(index["signature"], cfg.num_perm)
    old_keys = _band_key_matrix(index["band_keys"], bands)
    new_ids = new["doc_id"].combine_chunks().cast(pa.string())
    if pc.any(pc.is_in(new_ids, value_set=old_ids)).as_py():
        raise ValueError("new doc_ids must not appear in the index")

    ids = pa.concat_arrays([new_ids, old_ids])
    order = pc.sort_indices(ids).to_numpy()
    ids = ids.take(order)
    require_unique_sorted(ids)
    sig = np.concatenate([new_sig, old_sig])[order]
    keys = np.concatenate([*keys_of, old_keys])[order]
    is_old = (order >= len(new_ids))
    active = ~is_empty(sig) | is_old
    src, dst = star_edges(keys, active=active)
    fresh = ~(is_old[src] & is_old[dst])
    src, dst = src[fresh], dst[fresh]
    if cfg.verify_edges and len(src):
        ok = signature_jaccard(sig[src], sig[dst]) >= cfg.resolved_verify_threshold()
        src, dst = src[ok], dst[ok]
    # keep-rule ranks of the new rows; old rows are ranked by doc_id (pinned: they come first)
    new_pos = np.nonzero(~is_old)[0]
    ranks = np.arange(len(ids), dtype=np.int64) + len(ids)
    ranks[new_pos] = keep_ranks(new.take(order[new_pos]), rule)
    floor = cfg.threshold - cfg.tolerance
    res = resolve_near(sig, src, dst, ranks, floor=floor, verify="signature", pinned=is_old)
    log.info("incremental near dedup: %d new, %d indexed, %d edges, %d removed", len(new_ids), len(old_ids),
             len(src), len(res.removed))
    over = res.component_sizes[res.component_sizes > cfg.max_cluster]
    largest = int(res.component_sizes[0]) if len(res.component_sizes) else 0
    return removed_rows(ids, res, "signature", rows=new_pos).replace_schema_metadata(
        {"near_largest_component": str(largest), "near_components_over_max_cluster": str(len(over))})
