"""The re-examination rule (dedup.resolve): removals only with a member's own similarity to the kept document."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dedup.config import DedupConfig
from dedup.local import near_duplicates_local
from dedup.resolve import resolve_clusters, shingle_similarity, standard_error


def _table_similarity(pairs: dict[tuple[int, int], float]):  # type: ignore[no-untyped-def]
    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array([pairs.get((min(x, y), max(x, y)), 0.0) for x, y in zip(a.tolist(), b.tolist(), strict=True)])
    return similarity


def test_chain_member_without_direct_evidence_is_kept() -> None:
    # A=0 ~ B=1 ~ C=2, A !~ C; A wins the keep rule: B goes, C stays (the old rule removed both)
    sim = _table_similarity({(0, 1): 0.85, (1, 2): 0.85, (0, 2): 0.6})
    res = resolve_clusters(3, np.array([1, 2]), np.array([0, 1]), np.array([0, 1, 2]), sim, 0.77)
    assert res.kept.tolist() == [0, 0, 2]
    assert res.similarity[1] == pytest.approx(0.85) and np.isnan(res.similarity[[0, 2]]).all()
    assert res.cluster.tolist() == [0, 0, 2]
    assert res.cluster_sizes().tolist() == [2, 0, 1]
    # the middle document wins: both ends have direct evidence against it
    res = resolve_clusters(3, np.array([1, 2]), np.array([0, 1]), np.array([1, 0, 2]), sim, 0.77)
    assert res.kept.tolist() == [1, 1, 1] and res.cluster.tolist() == [0, 0, 0]
    assert res.component_sizes.tolist() == [3]


def test_chain_remainder_forms_its_own_cluster() -> None:
    # 0~1~2~3 in a line, 0 wins; 2 and 3 fail against 0 but are similar to each other: 2 keeps 3
    sim = _table_similarity({(0, 1): 0.9, (1, 2): 0.9, (2, 3): 0.9, (0, 2): 0.7, (0, 3): 0.5, (1, 3): 0.7})
    res = resolve_clusters(4, np.array([1, 2, 3]), np.array([0, 1, 2]), np.arange(4), sim, 0.8)
    assert res.kept.tolist() == [0, 0, 2, 2]
    assert res.cluster.tolist() == [0, 0, 2, 2]
    assert res.rounds == 2


@pytest.mark.parametrize("centre_wins", [False, True])
def test_star_of_50_with_a_weak_centre(centre_wins: bool) -> None:
    # centre 0 is similar to each of 50 leaves; the leaves are not similar to each other
    pairs = {(0, leaf): 0.85 for leaf in range(1, 51)}
    pairs.update({(i, j): 0.45 for i in range(1, 51) for j in range(i + 1, 51)})
    ranks = np.arange(51) if centre_wins else np.r_[50, np.arange(50)]  # weak centre: the worst keep rank
    src, dst = np.arange(1, 51), np.zeros(50, dtype=np.int64)
    res = resolve_clusters(51, src, dst, ranks, _table_similarity(pairs), 0.77)
    if centre_wins:
        assert (res.kept == 0).all() and res.cluster_sizes()[0] == 51
    else:
        # the best leaf is kept, the centre is its duplicate, the 49 other leaves stay: never 50 removals
        assert res.removed.tolist() == [0] and res.kept[0] == 1
        assert res.cluster_sizes()[1] == 2 and (res.cluster_sizes()[2:] == 1).all()
    assert res.component_sizes.tolist() == [51]


def test_pinned_nodes_are_never_removed_and_keep_their_duplicates() -> None:
    # 0 and 2 are pinned (earlier kept documents); 1 is similar to both, 3 only to 2
    sim = _table_similarity({(0, 1): 0.9, (1, 2): 0.9, (0, 2): 0.9, (2, 3): 0.9})
    res = resolve_clusters(4, np.array([1, 2, 3]), np.array([0, 1, 2]), np.array([0, 3, 1, 2]), sim, 0.8,
                           pinned=np.array([True, False, True, False]))
    assert res.kept.tolist() == [0, 0, 2, 2]


def test_resolution_rejects_bad_shapes() -> None:
    sim = _table_similarity({})
    with pytest.raises(ValueError, match="ranks"):
        resolve_clusters(3, np.array([1]), np.array([0]), np.arange(2), sim, 0.8)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        resolve_clusters(2, np.array([2]), np.array([0]), np.arange(2), sim, 0.8)


def test_shingle_similarity_is_exact_jaccard() -> None:
    hashes = np.array([1, 2, 3, 3, 2, 3, 4, 9], dtype=np.uint64)
    offsets = np.array([0, 4, 7, 8, 8])  # {1,2,3}, {2,3,4}, {9}, {}
    sim = shingle_similarity(hashes, offsets)
    assert sim(np.array([0, 0, 3]), np.array([1, 2, 3])).tolist() == [0.5, 0.0, 0.0]
    assert standard_error(0.8, 128) == pytest.approx(0.0354, abs=1e-4)


def _words(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"w{int(x)}" for x in rng.integers(0, 50_000, size=n)]


def _text_chain() -> pa.Table:
    """A, B, C of 200 words: B is A with one 12-word block replaced, C is B with another: J(A,B) and J(B,C)
    are about 0.85, J(A,C) about 0.73."""
    a = _words(200, 0)
    b = a[:40] + _words(12, 1) + a[52:]
    c = b[:140] + _words(12, 2) + b[152:]
    texts = [" ".join(t) for t in (a, b, c)]
    return pa.table({"doc_id": ["A", "B", "C"], "text": texts, "quality_score": [0.9, 0.5, 0.1],
                     "n_chars": pa.array([len(t) for t in texts], pa.int64())})


@pytest.mark.parametrize("verify", ["signature", "shingles"])
def test_text_chain_removes_only_the_document_with_evidence(verify: str) -> None:
    out = near_duplicates_local([_text_chain()], cfg=DedupConfig(verify=verify))
    assert out["doc_id"].to_pylist() == ["B"]
    assert out["kept_doc_id"].to_pylist() == ["A"] and out["cluster_id"].to_pylist() == ["A"]
    assert out["verified_by"].to_pylist() == [verify]
    assert 0.77 <= out["similarity"][0].as_py() <= 0.95
    if verify == "shingles":
        assert out["similarity"][0].as_py() == pytest.approx(180 / 212)  # 196 shingles each, 16 differ: 180 shared
