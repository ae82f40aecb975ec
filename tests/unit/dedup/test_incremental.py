"""Pure parts of incremental dedup: index parameters, the keep rule with old documents pinned, and the
single-machine engine against an index of earlier kept documents."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dedup.config import DedupConfig
from dedup.incremental import (
    dedup_index_params,
    index_params,
    kept_against_index,
    near_duplicates_against_index_local,
    signature_matrix,
)
from dedup.incremental.local import (
    band_hits,
    duplicates_against_index_local,
    exact_duplicates_against_index_local,
)
from dedup.keep import arrival_first
from dedup.local import near_duplicates_local
from dedup.lsh import band_keys
from dedup.minhash import minhash_signatures

CFG = DedupConfig(keep=["-n_chars", "doc_id"])

BASE = ("the quick brown fox jumps over the lazy dog while the farmer sleeps in the warm afternoon sun "
        "and the children play by the river near the old mill where the water runs clear and cold")
OTHER = ("a completely different sentence about compilers registers and instruction scheduling in modern "
         "processors with deep pipelines branch predictors and large caches shared between many cores")


def _index(ids: list[str], texts: list[str], cfg: DedupConfig = CFG) -> pa.Table:
    sig = minhash_signatures(pa.array(texts), num_perm=cfg.num_perm, ngram=cfg.ngram, seed=cfg.seed)
    keys = band_keys(sig, 16, 8)
    return pa.table({
        "doc_id": pa.array(ids, pa.string()),
        "signature": pa.array([row.astype("<u4").tobytes() for row in sig], pa.binary()),
        "band_keys": pa.array([row.tolist() for row in keys], pa.list_(pa.int64())),
    })


def _batch(ids: list[str], texts: list[str]) -> pa.Table:
    return pa.table({"doc_id": ids, "text": texts, "n_chars": [len(t) for t in texts]})


def test_index_params_is_canonical_and_checked() -> None:
    assert dedup_index_params(CFG) == "num_perm=128,bands=16,rows=8,ngram=5,shingle=word,seed=42"
    assert dedup_index_params(CFG.model_copy(update={"seed": 7})) != dedup_index_params(CFG)
    with pytest.raises(ValueError, match="bands \\* rows"):
        index_params(num_perm=64, bands=16, rows=8, ngram=5, shingle="word", seed=1)
    with pytest.raises(ValueError, match="ngram"):
        index_params(num_perm=64, bands=8, rows=8, ngram=0, shingle="word", seed=1)


def test_kept_against_index_pins_old_nodes() -> None:
    # component 0: new 0, old 1, new 2, old 3; component 4: new 4, 5; component 6: old 6 alone
    labels = np.array([0, 0, 0, 0, 4, 4, 6])
    is_old = np.array([False, True, False, True, False, False, True])
    ranks = np.array([0, 5, 1, 2, 4, 3, 6])
    kept = kept_against_index(labels, is_old, ranks)
    # new nodes of component 0 go to the old node of smallest rank (3), never to the better-ranked new node 0;
    # old node 1 stays itself; component 4 follows the ranks (5 beats 4)
    assert kept.tolist() == [3, 1, 3, 3, 5, 5, 6]


def test_kept_against_index_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="one length"):
        kept_against_index(np.zeros(3), np.zeros(2, bool), np.zeros(3))


def test_signature_matrix_round_trips_and_checks_width() -> None:
    index = _index(["a"], [BASE])
    sig = minhash_signatures(pa.array([BASE]))
    assert np.array_equal(signature_matrix(index["signature"], 128), sig)
    with pytest.raises(ValueError, match="512 bytes"):
        signature_matrix(pa.array([b"abc"], pa.binary()), 128)


def _ids(out: pa.Table) -> list[dict[str, str]]:
    assert set(out["verified_by"].to_pylist()) <= {"signature"}
    assert pa.compute.min(out["similarity"]).as_py() is None or pa.compute.min(out["similarity"]).as_py() >= 0.77
    return out.select(["doc_id", "cluster_id", "kept_doc_id"]).to_pylist()


def test_new_copy_of_an_old_doc_is_its_duplicate_even_when_longer() -> None:
    index = _index(["old-1", "old-2"], [BASE, OTHER])
    longer = BASE + " again"  # a better keep rank than the old doc would have: the old one still wins
    shorter = BASE.removesuffix(" and cold")
    new = _batch(["new-a", "new-b", "new-c"], [longer, shorter, "nothing like the others at all, just a short note"])
    out = near_duplicates_against_index_local([new], index, cfg=CFG)
    assert _ids(out) == [
        {"doc_id": "new-a", "cluster_id": "new-a", "kept_doc_id": "old-1"},
        {"doc_id": "new-b", "cluster_id": "new-a", "kept_doc_id": "old-1"},
    ]


def test_new_only_clusters_follow_the_keep_rule_and_old_pairs_stay() -> None:
    # two old docs that are near copies of each other (e.g. kept before near dedup was on) stay as they are
    index = _index(["old-1", "old-2"], [BASE, BASE.replace("cold", "clear")])
    fresh = OTHER + " today"
    new = _batch(["x-short", "x-long"], [OTHER, fresh])
    out = near_duplicates_against_index_local([new], index, cfg=CFG)
    assert _ids(out) == [{"doc_id": "x-short", "cluster_id": "x-long", "kept_doc_id": "x-long"}]


def test_batches_split_any_way_give_the_same_result() -> None:
    index = _index(["old-1"], [BASE])
    texts = [BASE.removesuffix(" and cold"), OTHER, OTHER + " indeed", "short text with few words here"]
    new = _batch(["n1", "n2", "n3", "n4"], texts)
    whole = near_duplicates_against_index_local([new], index, cfg=CFG)
    split = near_duplicates_against_index_local([new.slice(0, 1), new.slice(1, 2), new.slice(3)], index, cfg=CFG)
    assert whole.equals(split)
    assert _ids(whole) == [{"doc_id": "n1", "cluster_id": "n1", "kept_doc_id": "old-1"},
                                 {"doc_id": "n2", "cluster_id": "n2", "kept_doc_id": "n3"}]


def test_overlapping_ids_and_foreign_index_are_rejected() -> None:
    index = _index(["a"], [BASE])
    with pytest.raises(ValueError, match="must not appear in the index"):
        near_duplicates_against_index_local([_batch(["a"], [OTHER])], index, cfg=CFG)
    narrow = CFG.model_copy(update={"bands": 8, "rows": 8})
    with pytest.raises(ValueError, match="8 keys per row"):
        near_duplicates_against_index_local([_batch(["b"], [OTHER])], index, cfg=narrow)


def test_arrival_first_makes_a_full_run_keep_what_incremental_runs_kept() -> None:
    cfg = CFG.model_copy(update={"keep": arrival_first(CFG.keep, "arrival"), "verify": "signature"})
    early = BASE.removesuffix(" and cold")  # shorter: the keep rule alone prefers the later, longer original
    first = pa.table({"doc_id": ["early"], "text": [early], "n_chars": [len(early)], "arrival": [1]})
    later = pa.table({"doc_id": ["late", "late-other"], "text": [BASE, OTHER], "n_chars": [len(BASE), len(OTHER)],
                      "arrival": [2, 2]})
    assert near_duplicates_local([first], cfg=cfg).num_rows == 0  # the first run keeps (publishes) "early"
    incremental = near_duplicates_against_index_local([later], _index(["early"], [early]), cfg=cfg)
    full = near_duplicates_local([first, later], cfg=cfg)
    assert _ids(incremental) == _ids(full) == [{"doc_id": "late", "cluster_id": "early", "kept_doc_id": "early"}]
    # without the arrival leading the rule, a full run would drop the published document for the later one
    plain = near_duplicates_local([first, later], cfg=cfg.model_copy(update={"keep": CFG.keep}))
    assert _ids(plain) == [{"doc_id": "early", "cluster_id": "early", "kept_doc_id": "late"}]


def test_band_hits_match_a_key_in_the_same_band_only() -> None:
    old = np.array([[1, 2], [3, 4], [5, 2], [2, 1]])
    assert band_hits(old, np.array([[5, 9], [7, 2]])).tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="equal bands"):
        band_hits(old, np.array([[1, 2, 3]]))


def _hashed(ids: list[str], texts: list[str]) -> pa.Table:
    from dedup.exact import text_hash128_hex

    batch = _batch(ids, texts)
    return batch.append_column("exact_hash", text_hash128_hex(batch["text"]))


def test_exact_against_old_keeps_the_old_copy_and_ranks_new_only_groups() -> None:
    old = _hashed(["old-b", "old-a"], [BASE, OTHER]).select(["doc_id", "exact_hash"])
    new = _hashed(["n2", "n1", "n3", "n4", "n5"], [BASE, BASE, OTHER + " x", OTHER + " x", "alone here"])
    out = exact_duplicates_against_index_local(new, old, keep=["-n_chars", "doc_id"])
    # both copies of BASE go to the old document; of two equal new texts the smaller doc_id wins the tie
    assert out.select(["doc_id", "cluster_id", "kept_doc_id"]).to_pylist() == [
        {"doc_id": "n1", "cluster_id": "n1", "kept_doc_id": "old-b"},
        {"doc_id": "n2", "cluster_id": "n1", "kept_doc_id": "old-b"},
        {"doc_id": "n4", "cluster_id": "n3", "kept_doc_id": "n3"},
    ]
    assert set(out["similarity"].to_pylist()) == {1.0} and set(out["verified_by"].to_pylist()) == {"exact_hash"}


def test_duplicates_against_an_index_need_only_the_candidates() -> None:
    # exact then near against old documents; the index's rows that share no bucket change nothing
    unrelated = [f"a short unrelated line number {i} about nothing in particular at all today" for i in range(5)]
    index = _index(["old-1", "old-2", *[f"old-u{i}" for i in range(5)]], [BASE, OTHER, *unrelated])
    old_hashes = _hashed(["old-1", "old-2", *[f"old-u{i}" for i in range(5)]], [BASE, OTHER, *unrelated])
    new = _hashed(["n-copy", "n-near", "n-fresh"], [OTHER, BASE.removesuffix(" and cold"), "brand new words " * 5])
    full = duplicates_against_index_local(new, old_hashes, index, cfg=CFG)
    keys = index["band_keys"].combine_chunks()
    new_keys = band_keys(minhash_signatures(new["text"]), 16, 8)
    hit = band_hits(pa.compute.list_flatten(keys).to_numpy().reshape(len(keys), 16), new_keys)
    assert hit.sum() == 2  # old-1 and old-2 only
    fewer = duplicates_against_index_local(new, old_hashes.filter(pa.array(hit)), index.filter(pa.array(hit)), cfg=CFG)
    assert full.equals(fewer)
    assert full.select(["doc_id", "kept_doc_id", "dup_reason"]).to_pylist() == [
        {"doc_id": "n-copy", "kept_doc_id": "old-2", "dup_reason": "exact"},
        {"doc_id": "n-near", "kept_doc_id": "old-1", "dup_reason": "near"},
    ]


def test_a_batch_carrying_its_band_keys_gives_the_same_result_without_recomputing_them() -> None:
    index = _index(["old-1", "old-2"], [BASE, OTHER + " again"])
    texts = [BASE.removesuffix(" and cold"), OTHER, OTHER + " indeed", "word"]
    plain = _batch(["n1", "n2", "n3", "n4"], texts)
    own = _index(["n1", "n2", "n3", "n4"], texts)  # signature and band keys as curate's filter pass writes them
    keyed = plain.append_column("signature", own["signature"]).append_column("band_keys", own["band_keys"])
    keyed = keyed.set_column(4, "band_keys", pa.array([*own["band_keys"].to_pylist()[:3], None],
                                                      pa.list_(pa.int64())))  # no keys: computed from its signature
    expected = near_duplicates_against_index_local([plain], index, cfg=CFG)
    assert expected.num_rows >= 2
    assert near_duplicates_against_index_local([keyed], index, cfg=CFG).equals(expected)
    # the column is what is read: keys of another width are refused, not silently recomputed
    short = keyed.set_column(4, "band_keys", pa.array([[1, 2]] * 4, pa.list_(pa.int64())))
    with pytest.raises(ValueError, match="16 keys per row"):
        near_duplicates_against_index_local([short], index, cfg=CFG)
