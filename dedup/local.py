"""Single-machine dedup over a stream of Arrow batches (no Spark): for small corpora, tests and the memory
target.

Memory: only one batch's text is alive at a time. Per document the engine keeps a fixed-size record: the
signature (4 * num_perm bytes), its band keys (8 * bands bytes), the doc_id and the keep-rule columns, so a
corpus of N documents costs about N * (4 * num_perm + 8 * bands + ~40) bytes on top of one batch, whatever
the documents' length (a 1 GB corpus of 2 KB documents: ~0.35 GB).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.components import star_edges
from dedup.config import DedupConfig
from dedup.incremental import signature_view
from dedup.keep import first_of_codes, keep_ranks, kept_members, parse_keep_rule, require_unique_sorted
from dedup.lsh import band_keys, resolve_bands
from dedup.minhash import EMPTY, is_empty, minhash_signatures, signature_jaccard
from dedup.resolve import RESULT_SCHEMA, removed_rows, resolve_near

log = logging.getLogger(__name__)

__all__ = ["DUPLICATE_SCHEMA", "RESULT_SCHEMA", "TextFetch", "combine_local", "component_stats", "duplicates_local",
           "exact_duplicates_local", "near_duplicates_local", "signatures_of"]

DUPLICATE_SCHEMA = RESULT_SCHEMA.append(pa.field("dup_reason", pa.string()))
# dedup_index rows: a document's MinHash signature (4 * num_perm little-endian bytes) and its band keys
SIGNATURE_ARROW = pa.schema(
    [("doc_id", pa.string()), ("signature", pa.binary()), ("band_keys", pa.list_(pa.int64()))]
)
# verify='shingles' without a text column: doc_ids (string array) -> their texts, in that order (the Spark
# driver plan fetches only the candidates' texts)
TextFetch = Callable[[pa.Array], pa.Array]
# the component report of near dedup (counts in the curate metrics)
STAT_NAMES = ("near_largest_component", "near_components_over_max_cluster")


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
    require_unique_sorted(meta["doc_id"])
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
    return _removed_exact(meta, first_of_codes(codes), rule)


def signature_columns(texts: pa.Array | pa.ChunkedArray, cfg: DedupConfig) -> tuple[pa.Array, pa.Array]:
    """(signature, band_keys) Arrow columns of documents: binary of 4 * num_perm little-endian bytes and
    list<int64> of one key per band, both null for a document without any shingle (it can only be an exact
    duplicate). The columns dedup_index stores and the Spark engine reads."""
    bands, rows = resolve_bands(
        cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.false_positive_weight, cfg.false_negative_weight
    )
    sig = np.ascontiguousarray(
        minhash_signatures(texts, num_perm=cfg.num_perm, ngram=cfg.ngram, mode=cfg.shingle, seed=cfg.seed))
    keys = band_keys(sig, bands, rows).reshape(-1)
    n, width = len(sig), cfg.num_perm * 4
    present = ~is_empty(sig)
    valid = pa.py_buffer(np.packbits(present, bitorder="little")) if not present.all() else None
    nulls = int(n - present.sum())
    sig_arr = pa.Array.from_buffers(pa.binary(), n, [valid, pa.py_buffer(np.arange(n + 1, dtype=np.int32) * width),
                                                     pa.py_buffer(sig)], null_count=nulls)
    key_arr = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * bands), pa.array(keys),
                                       mask=pa.array(~present) if nulls else None)
    return sig_arr, key_arr


def signature_rows(batch: pa.RecordBatch | pa.Table, cfg: DedupConfig) -> pa.Table:
    """SIGNATURE_ARROW rows of the documents of `batch` (doc_id, and text or its own signature/band_keys
    columns, see `signature_columns`) that have at least one shingle."""
    if "signature" in batch.column_names and "band_keys" in batch.column_names:
        sig, keys = batch.column("signature"), batch.column("band_keys")
    else:
        sig, keys = signature_columns(batch.column("text"), cfg)
    present = pc.is_valid(sig)  # documents without shingles cannot be near duplicates
    ids = batch.column("doc_id").cast(pa.string())
    return pa.table([ids.filter(present), sig.filter(present), keys.filter(present)],
                    schema=SIGNATURE_ARROW)


def signatures_of(table: pa.Table, cfg: DedupConfig) -> np.ndarray:
    """The (n, num_perm) uint32 signatures of a table's rows: its `signature` column when it has one (binary,
    4 * num_perm little-endian bytes; a null stands for a document without shingles and reads as the empty
    signature), else computed from its `text`. Raises ValueError when neither column is there."""
    if "signature" in table.column_names:  # one copy, chunk by chunk, from the Arrow buffers into the matrix
        sig = np.empty((table.num_rows, cfg.num_perm), dtype=np.uint32)
        at = 0
        for chunk in table["signature"].chunks:
            rows = sig[at:at + len(chunk)]
            if chunk.null_count:
                present = pc.is_valid(chunk).to_numpy(zero_copy_only=False)
                rows[:] = EMPTY
                rows[present] = signature_view(chunk.filter(pa.array(present)), cfg.num_perm)
            elif len(chunk):
                rows[:] = signature_view(chunk, cfg.num_perm)
            at += len(chunk)
        return sig
    if "text" not in table.column_names:
        raise ValueError(f"input batches need a 'text' or 'signature' column, got {table.column_names}")
    return minhash_signatures(table["text"], num_perm=cfg.num_perm, ngram=cfg.ngram, mode=cfg.shingle, seed=cfg.seed)


def near_duplicates_local(batches: Iterable[pa.RecordBatch | pa.Table], *, cfg: DedupConfig,
                          texts: TextFetch | None = None) -> pa.Table:
    """MinHash-LSH near duplicates of a stream of batches, deduplicated against each other and themselves.

    Input columns: doc_id (string, unique), text (string) or a precomputed `signature` (see `signatures_of`;
    text is still needed for verify='shingles') and the keep-rule columns of `cfg.keep`.
    Candidates are star edges of LSH buckets, verified by signature Jaccard >= cfg.resolved_verify_threshold()
    unless cfg.verify is 'none'; their components are resolved by direct evidence (dedup.resolve): a member
    is removed only when its own similarity to the kept document is >= cfg.removal_floor(). Returns
    RESULT_SCHEMA rows of the removed documents sorted by doc_id; the result does not depend on how the
    input is split into batches. With verify='shingles' the texts are held in memory until the end, unless
    the batches have no `text` column and `texts` fetches the candidates' texts (see `TextFetch`): then only
    the texts of documents with a verified candidate edge are ever held.
    """
    rule = parse_keep_rule(cfg.keep)
    meta_parts: list[pa.Table] = []
    sig_parts: list[np.ndarray] = []
    cols = ["doc_id", *[c for c, _ in rule if c != "doc_id"]]
    for table in _tables(batches):
        if cfg.verify == "shingles" and "text" in table.column_names and "text" not in cols:
            cols.append("text")
        sig_parts.append(signatures_of(table, cfg))
        meta_parts.append(table.select(cols))
    if not meta_parts:
        return RESULT_SCHEMA.empty_table()
    meta, order = _sorted_by_doc_id(pa.concat_tables(meta_parts))
    sig = (sig_parts[0] if len(sig_parts) == 1 else np.concatenate(sig_parts))[order]  # one copy for one table
    del sig_parts
    return _near_sorted(meta, sig, cfg, texts)


def _candidate_texts(meta: pa.Table, src: np.ndarray, dst: np.ndarray, texts: TextFetch | None) -> pa.Array:
    """A text per row of `meta`: its own `text` column, else the texts `texts` fetches for the rows with an
    edge (null for the others, which resolve_near never reads)."""
    if "text" in meta.column_names:
        return meta["text"].combine_chunks()
    if texts is None:
        raise ValueError("verify='shingles' needs a 'text' column or a function fetching the candidates' texts")
    sub = np.unique(np.concatenate([src, dst]))
    ids = meta["doc_id"].combine_chunks().cast(pa.string())
    wanted = texts(ids.take(pa.array(sub))) if len(sub) else pa.array([], pa.string())
    if isinstance(wanted, pa.ChunkedArray):
        wanted = wanted.combine_chunks()
    fetched = pa.concat_arrays([wanted.cast(pa.string()), pa.nulls(1, pa.string())])
    at = np.full(len(meta), len(sub), dtype=np.int64)  # the trailing null
    at[sub] = np.arange(len(sub))
    return fetched.take(pa.array(at))


def _near_sorted(meta: pa.Table, sig: np.ndarray, cfg: DedupConfig, texts: TextFetch | None = None) -> pa.Table:
    """near_duplicates_local on rows already sorted by doc_id with their signatures."""
    rule = parse_keep_rule(cfg.keep)
    bands, rows = resolve_bands(
        cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.false_positive_weight, cfg.false_negative_weight
    )
    src, dst = star_edges(band_keys(sig, bands, rows), active=~is_empty(sig))
    n_candidates = len(src)
    if cfg.verify_edges and len(src):
        ok = signature_jaccard(sig[src], sig[dst]) >= cfg.resolved_verify_threshold()
        src, dst = src[ok], dst[ok]
    res = resolve_near(sig, src, dst, keep_ranks(meta, rule), floor=cfg.removal_floor(), verify=cfg.verify,
                       texts=_candidate_texts(meta, src, dst, texts) if cfg.verify == "shingles" else None,
                       ngram=cfg.ngram, mode=cfg.shingle)
    log.info("near dedup: %d docs, %dx%d bands, %d candidate edges, %d verified, %d removed in %d rounds",
             len(sig), bands, rows, n_candidates, len(src), len(res.removed), res.rounds)
    over = res.component_sizes[res.component_sizes > cfg.max_cluster]
    if len(over):
        log.warning("near dedup: %d components larger than max_cluster=%d (largest %d), resolved member by member",
                    len(over), cfg.max_cluster, over[0])
    ids = meta["doc_id"].combine_chunks().cast(pa.string())
    out = removed_rows(ids, res, "shingles" if cfg.verify == "shingles" else "signature")
    largest = int(res.component_sizes[0]) if len(res.component_sizes) else 0
    return out.replace_schema_metadata({"near_largest_component": str(largest),
                                        "near_components_over_max_cluster": str(len(over))})


def component_stats(near: pa.Table) -> dict[str, int]:
    """The component report a near_duplicates_local result carries: the largest component of candidate edges
    and the count of components larger than max_cluster (0 when the table carries none)."""
    meta = near.schema.metadata or {}
    return {name: int(meta.get(name.encode(), b"0")) for name in STAT_NAMES}


def duplicates_local(table: pa.Table, *, cfg: DedupConfig, texts: TextFetch | None = None) -> pa.Table:
    """Exact then near duplicates of one table, as the curate stage removes them: DUPLICATE_SCHEMA rows
    (RESULT_SCHEMA and `dup_reason`, 'exact' or 'near') of the removed documents, sorted by doc_id.

    Input: doc_id (unique), exact_hash (a null one takes no part in exact dedup), the keep-rule columns and
    text and/or signature (see `near_duplicates_local`). Near dedup sees the documents exact dedup kept; an exact duplicate of a
    document near dedup then removes is re-pointed to the document kept in its place (same text, so the
    same similarity and evidence), so every kept_doc_id names a kept document. The result's schema metadata
    carries the component report (`component_stats`). `texts`: as in `near_duplicates_local`.
    """
    exact = RESULT_SCHEMA.empty_table()
    if cfg.exact:  # as on Spark: a null exact_hash takes no part; the filter copies no signature or text
        keep_cols = {c for c, _ in parse_keep_rule(cfg.keep)}
        light = table.drop_columns([c for c in ("text", "signature", "band_keys")
                                    if c in table.column_names and c not in keep_cols])
        exact = exact_duplicates_local([light.filter(pc.is_valid(light["exact_hash"]))], keep=cfg.keep)
    near = RESULT_SCHEMA.empty_table()
    stats = {name: 0 for name in STAT_NAMES}
    if cfg.near:
        rest = table.filter(pc.invert(pc.is_in(table["doc_id"], value_set=exact["doc_id"])))
        near = near_duplicates_local([rest], cfg=cfg, texts=texts)
        stats = component_stats(near)
    return combine_local(exact, near).replace_schema_metadata({k: str(v) for k, v in stats.items()})


def combine_local(exact: pa.Table, near: pa.Table) -> pa.Table:
    """DUPLICATE_SCHEMA rows of exact and near removals (RESULT_SCHEMA each), sorted by doc_id, the exact ones
    re-pointed: an exact duplicate of a document near dedup removed takes that document's cluster, kept
    document, similarity and evidence (same text), so every kept_doc_id names a kept document."""
    if exact.num_rows and near.num_rows:
        exact, near = exact.combine_chunks(), near.combine_chunks()
        pos = pc.index_in(exact["kept_doc_id"], value_set=near["doc_id"])
        moved = pc.is_valid(pos)
        at = pc.fill_null(pos, 0)
        columns = [exact["doc_id"]]
        for name in ("cluster_id", "kept_doc_id", "similarity", "verified_by"):
            columns.append(pc.if_else(moved, near[name].take(at), exact[name]))
        exact = pa.table(columns, schema=RESULT_SCHEMA)
    out = pa.concat_tables([
        _with_reason(exact.replace_schema_metadata(None), "exact"),
        _with_reason(near.replace_schema_metadata(None), "near")])
    return out.take(pc.sort_indices(out, sort_keys=[("doc_id", "ascending")]))


def _with_reason(rows: pa.Table, reason: str) -> pa.Table:
    return rows.append_column("dup_reason", pa.array([reason] * rows.num_rows, pa.string()))
