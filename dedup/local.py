"""Single-machine dedup over a stream of Arrow batches (no Spark): for small corpora, tests and the memory
target.

Memory: only one batch's text is alive at a time. Per document the engine keeps a fixed-size record: the
signature (4 * num_perm bytes), its band keys (8 * bands bytes), the doc_id and the keep-rule columns, so a
corpus of N documents costs about N * (4 * num_perm + 8 * bands + ~40) bytes on top of one batch, whatever
the documents' length (a 1 GB corpus of 2 KB documents: ~0.35 GB).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.components import star_edges
from dedup.config import DedupConfig
from dedup.keep import keep_ranks, kept_members, parse_keep_rule
from dedup.lsh import band_keys, resolve_bands
from dedup.minhash import is_empty, minhash_signatures, signature_jaccard
from dedup.resolve import RESULT_SCHEMA, removed_rows, resolve_near

log = logging.getLogger(__name__)

__all__ = ["RESULT_SCHEMA", "exact_duplicates_local", "near_duplicates_local"]


def _tables(batches: Iterable[pa.RecordBatch | pa.Table]) -> Iterable[pa.Table]:
    for batch in batches:
        yield pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch


def _removed_exact(meta: pa.Table, labels: np.ndarray, rule: list[tuple[str, bool]]) -> pa.Table:
    """RESULT_SCHEMA rows of the non-kept members of exact clusters; `meta` is sorted by doc_id and `labels`
    give each row's cluster as its smallest row index. Equal texts have similarity 1."""
    kept = kept_members(labels, keep_ranks(meta, rule))
    removed = np.nonzero(kept != np.arange(len(kept)))[0]
    ids = meta["doc_id"].combine_chunks().cast(pa.string())
    return pa.table(
        [ids.take(removed), ids.take(labels[removed]), ids.take(kept[removed]),
         pa.array(np.ones(len(removed)), pa.float64()), pa.array(["exact_hash"] * len(removed), pa.string())],
        schema=RESULT_SCHEMA,
    )


def _sorted_by_doc_id(meta: pa.Table) -> tuple[pa.Table, np.ndarray]:
    if meta["doc_id"].null_count:
        raise ValueError(f"doc_id has {meta['doc_id'].null_count} null values")
    order = pc.sort_indices(meta, sort_keys=[("doc_id", "ascending")]).to_numpy()
    meta = meta.take(order)
    ids = meta["doc_id"]
    if len(ids) > 1 and pc.any(pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))).as_py():
        raise ValueError("doc_id values must be unique; the input repeats at least one")
    return meta, order


def exact_duplicates_local(batches: Iterable[pa.RecordBatch | pa.Table], *, keep: list[str]) -> pa.Table:
    """Exact duplicates: documents sharing `exact_hash` form a cluster; all but the kept one are returned.

    Input columns: doc_id (unique), exact_hash, and the keep-rule columns. Output: RESULT_SCHEMA rows of
    removed documents, sorted by doc_id.
    """
    rule = parse_keep_rule(keep)
    cols = ["doc_id", "exact_hash", *[c for c, _ in rule if c not in ("doc_id", "exact_hash")]]
    parts = [t.select(cols) for t in _tables(batches)]
    if not parts:
        return RESULT_SCHEMA.empty_table()
    meta, _ = _sorted_by_doc_id(pa.concat_tables(parts))
    codes = pc.dictionary_encode(meta["exact_hash"].combine_chunks()).indices.to_numpy()
    first = np.full(int(codes.max()) + 1 if len(codes) else 0, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return _removed_exact(meta, first[codes], rule)


def near_duplicates_local(batches: Iterable[pa.RecordBatch | pa.Table], *, cfg: DedupConfig) -> pa.Table:
    """MinHash-LSH near duplicates of a stream of batches, deduplicated against each other and themselves.

    Input columns: doc_id (string, unique), text (string) and the keep-rule columns of `cfg.keep`.
    Candidates are star edges of LSH buckets, verified by signature Jaccard >= cfg.resolved_verify_threshold()
    unless cfg.verify is 'none'; their components are resolved by direct evidence (dedup.resolve): a member
    is removed only when its own similarity to the kept document is >= cfg.removal_floor(). Returns
    RESULT_SCHEMA rows of the removed documents sorted by doc_id; the result does not depend on how the
    input is split into batches. With verify='shingles' the texts are held in memory until the end.
    """
    rule = parse_keep_rule(cfg.keep)
    bands, rows = resolve_bands(
        cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.false_positive_weight, cfg.false_negative_weight
    )
    meta_parts: list[pa.Table] = []
    sig_parts: list[np.ndarray] = []
    cols = ["doc_id", *[c for c, _ in rule if c != "doc_id"]]
    if cfg.verify == "shingles":
        cols.append("text")
    for table in _tables(batches):
        if "text" not in table.column_names:
            raise ValueError(f"input batches need a 'text' column, got {table.column_names}")
        sig_parts.append(
            minhash_signatures(table["text"], num_perm=cfg.num_perm, ngram=cfg.ngram, mode=cfg.shingle, seed=cfg.seed)
        )
        meta_parts.append(table.select(cols))
    if not meta_parts:
        return RESULT_SCHEMA.empty_table()
    meta, order = _sorted_by_doc_id(pa.concat_tables(meta_parts))
    sig = np.concatenate(sig_parts)[order]
    del sig_parts
    src, dst = star_edges(band_keys(sig, bands, rows), active=~is_empty(sig))
    n_candidates = len(src)
    if cfg.verify_edges and len(src):
        ok = signature_jaccard(sig[src], sig[dst]) >= cfg.resolved_verify_threshold()
        src, dst = src[ok], dst[ok]
    res = resolve_near(sig, src, dst, keep_ranks(meta, rule), floor=cfg.removal_floor(), verify=cfg.verify,
                       texts=meta["text"] if cfg.verify == "shingles" else None, ngram=cfg.ngram, mode=cfg.shingle)
    log.info("near dedup: %d docs, %dx%d bands, %d candidate edges, %d verified, %d removed in %d rounds",
             len(sig), bands, rows, n_candidates, len(src), len(res.removed), res.rounds)
    over = res.component_sizes[res.component_sizes > cfg.max_cluster]
    if len(over):
        log.warning("near dedup: %d components larger than max_cluster=%d (largest %d), resolved member by member",
                    len(over), cfg.max_cluster, over[0])
    ids = meta["doc_id"].combine_chunks().cast(pa.string())
    return removed_rows(ids, res, "shingles" if cfg.verify == "shingles" else "signature")
