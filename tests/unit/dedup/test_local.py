"""Star edges, components, keep rule and the local (no Spark) dedup path."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dedup.components import connected_components, star_edges
from dedup.config import DedupConfig
from dedup.exact import text_hash128_hex
from dedup.keep import keep_ranks, kept_members, parse_keep_rule
from dedup.local import (
    component_stats,
    duplicates_local,
    exact_duplicates_local,
    near_duplicates_local,
    signature_columns,
    signatures_of,
)
from dedup.minhash import EMPTY, minhash_signatures

BASE = [
    "the quick brown fox jumps over the lazy dog while the farmer sleeps in the warm afternoon sun "
    "and the cows wander slowly across the green field towards the old red barn by the river",
    "in the beginning god created the heaven and the earth and the earth was without form and void "
    "and darkness was upon the face of the deep and the spirit moved upon the face of the waters",
]


def test_star_edges_link_each_member_to_the_bucket_minimum() -> None:
    keys = np.array([[5, 1], [5, 2], [7, 2], [5, 3], [9, 9]], dtype=np.int64)
    src, dst = star_edges(keys)
    # band 0 bucket {0,1,3} -> 1-0, 3-0 ; band 1 bucket {1,2} -> 2-1 ; never 3-1 (no all-pairs)
    assert list(zip(src.tolist(), dst.tolist(), strict=True)) == [(1, 0), (2, 1), (3, 0)]
    src, dst = star_edges(keys, active=np.array([False, True, True, True, True]))
    assert list(zip(src.tolist(), dst.tolist(), strict=True)) == [(2, 1), (3, 1)]


def test_connected_components_label_with_the_smallest_node() -> None:
    labels = connected_components(7, np.array([6, 3, 5, 4]), np.array([3, 1, 4, 2]))
    assert labels.tolist() == [0, 1, 2, 1, 2, 2, 1]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        connected_components(3, np.array([3]), np.array([0]))


def test_keep_rule_orders_with_nulls_last_and_doc_id_tiebreak() -> None:
    rule = parse_keep_rule(["-quality_score", "-n_chars"])
    assert rule == [("quality_score", True), ("n_chars", True), ("doc_id", False)]
    table = pa.table({"doc_id": ["a", "b", "c", "d"], "quality_score": [None, 0.5, 0.5, 0.1],
                      "n_chars": [100, 10, 10, 50]})
    ranks = keep_ranks(table, rule)
    assert ranks.tolist() == [3, 0, 1, 2]
    assert kept_members(np.array([0, 0, 2, 2]), ranks).tolist() == [1, 1, 2, 2]
    with pytest.raises(ValueError, match="twice"):
        parse_keep_rule(["doc_id", "-doc_id"])
    with pytest.raises(ValueError, match="'missing'"):
        keep_ranks(table, parse_keep_rule(["missing"]))


def _table(texts: list[str], ids: list[str], quality: list[float | None]) -> pa.Table:
    return pa.table({"doc_id": ids, "text": texts, "quality_score": pa.array(quality, pa.float64()),
                     "n_chars": pa.array([len(t) for t in texts], pa.int64())})


def _variants() -> tuple[list[str], list[str], list[float | None]]:
    """Each base, a longer copy (the best quality), a copy without its first word and an unrelated note."""
    texts, ids, quality = [], [], []
    for i, base in enumerate(BASE):
        words = base.split()
        for j, text in enumerate([base, base + " indeed", " ".join(words[1:]), f"an unrelated note number {i}"]):
            texts.append(text)
            ids.append(f"d{i}{j}")
            quality.append(0.9 if j == 1 else 0.1)
    return texts, ids, quality


def test_near_duplicates_local_removes_edited_copies_and_keeps_the_best() -> None:
    texts, ids, quality = _variants()
    out = near_duplicates_local([_table(texts, ids, quality)], cfg=DedupConfig())
    assert out.column_names == ["doc_id", "cluster_id", "kept_doc_id", "similarity", "verified_by"]
    assert set(out["verified_by"].to_pylist()) == {"shingles"} and pa.compute.min(out["similarity"]).as_py() >= 0.8
    rows = list(zip(*(out[c].to_pylist() for c in out.column_names[:3]), strict=True))
    assert rows == [("d00", "d00", "d01"), ("d02", "d00", "d01"), ("d10", "d10", "d11"), ("d12", "d10", "d11")]


def test_near_duplicates_local_does_not_depend_on_batching_or_order() -> None:
    rng = np.random.default_rng(1)
    words = " ".join(BASE).split()
    texts = []
    for _ in range(60):
        start = int(rng.integers(0, len(words) - 30))
        texts.append(" ".join(words[start : start + 30]))
    ids = [f"x{i:03d}" for i in range(60)]
    table = _table(texts, ids, list(rng.random(60)))
    cfg = DedupConfig(threshold=0.6)
    whole = near_duplicates_local([table], cfg=cfg)
    assert whole.num_rows > 0
    shuffled = table.take(rng.permutation(60))
    split = near_duplicates_local(shuffled.to_batches(max_chunksize=7), cfg=cfg)
    assert split.equals(whole)


def test_near_duplicates_local_rejects_repeated_doc_ids_and_missing_text() -> None:
    with pytest.raises(ValueError, match="unique"):
        near_duplicates_local([_table(["a b", "c d"], ["same", "same"], [0.1, 0.2])], cfg=DedupConfig())
    with pytest.raises(ValueError, match="'text'"):
        near_duplicates_local([pa.table({"doc_id": ["a"]})], cfg=DedupConfig())


def test_verification_stops_weak_candidates() -> None:
    # 64 bands of one row make nearly every pair sharing a few shingles a candidate
    a, b = BASE[0].split(), BASE[1].split()
    half = " ".join(a[: len(a) // 2] + b[len(b) // 2 :])  # Jaccard ~0.3 to each base
    table = _table([BASE[0], BASE[1], half], ["a", "b", "c"], [0.0, 0.0, 1.0])
    # unverified edges chain a~c~b into one cluster, but neither a nor b is similar to the kept c: no removal
    loose = DedupConfig(bands=64, rows=1, verify=False)
    assert near_duplicates_local([table], cfg=loose).num_rows == 0
    verified = DedupConfig(bands=64, rows=1, verify=True)
    assert near_duplicates_local([table], cfg=verified).num_rows == 0
    # the same chain with the keep rule favouring a: c is still not similar enough to a to be removed
    favour_a = table.set_column(2, "quality_score", pa.array([1.0, 0.0, 0.0]))
    assert near_duplicates_local([favour_a], cfg=loose).num_rows == 0


def test_exact_duplicates_local() -> None:
    table = pa.table({"doc_id": ["b", "a", "c"], "exact_hash": ["h1", "h1", "h2"],
                      "quality_score": [0.9, 0.1, 0.5], "n_chars": [1, 1, 1]})
    out = exact_duplicates_local([table], keep=DedupConfig().keep)
    assert list(zip(*(out[c].to_pylist() for c in out.column_names), strict=True)) == [
        ("a", "a", "b", 1.0, "exact_hash")]


def test_duplicates_local_repoints_exact_copies_of_near_removals() -> None:
    texts, ids, quality = _variants()
    texts.append(BASE[0])  # an exact copy of d00, ranked below it: exact dedup keeps d00, near dedup removes it
    ids.append("e00")
    quality.append(0.0)
    table = _table(texts, ids, quality)
    table = table.append_column("exact_hash", text_hash128_hex(table["text"]))
    out = duplicates_local(table, cfg=DedupConfig())
    rows = {r["doc_id"]: r for r in out.to_pylist()}
    assert out.column_names == ["doc_id", "cluster_id", "kept_doc_id", "similarity", "verified_by", "dup_reason"]
    assert sorted(rows) == ["d00", "d02", "d10", "d12", "e00"]
    assert rows["e00"] == {**rows["d00"], "doc_id": "e00", "dup_reason": "exact"}  # d00's cluster and evidence
    assert rows["d00"]["kept_doc_id"] == "d01" and rows["d00"]["dup_reason"] == "near"
    assert component_stats(out) == {"near_largest_component": 3, "near_components_over_max_cluster": 0}
    # signatures computed beforehand (the curate stage's filter pass) give the same rows
    sig, keys = signature_columns(table["text"], DedupConfig())
    signed = table.append_column("signature", sig).append_column("band_keys", keys)
    assert duplicates_local(signed, cfg=DedupConfig()).equals(out)
    assert duplicates_local(signed, cfg=DedupConfig(exact=False)).num_rows == 5  # e00 is d00's near copy too


def test_signature_columns_are_null_without_shingles() -> None:
    sig, keys = signature_columns(pa.array(["", "one two three four five six seven", ""]), DedupConfig())
    assert sig.is_valid().to_pylist() == keys.is_valid().to_pylist() == [False, True, False]
    assert len(sig[1].as_py()) == 4 * 128 and len(keys[1]) == 16


def test_signatures_of_reads_a_chunked_signature_column_with_nulls_as_the_text_gives_them() -> None:
    texts = pa.array([BASE[0], "", BASE[1], "short", BASE[0] + " tail words here", ""])
    sig, _ = signature_columns(texts, DedupConfig())
    chunked = pa.chunked_array([sig.slice(0, 2), sig.slice(2, 0), sig.slice(2, 3), sig.slice(5)])
    got = signatures_of(pa.table({"signature": chunked}), DedupConfig())
    want = minhash_signatures(texts)
    assert got.dtype == np.uint32 and got.flags.writeable
    np.testing.assert_array_equal(got, want)
    assert (got[[1, 5]] == EMPTY).all() and not (got[[0, 2, 3, 4]] == EMPTY).all(axis=1).any()
