"""Exact hash, shingling, MinHash and LSH kernels (no Spark)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dedup.components import _min_labels, _union_find, connected_components
from dedup.exact import text_hash128, text_hash128_hex
from dedup.lsh import band_keys, optimal_param, resolve_bands, s_curve
from dedup.minhash import (
    EMPTY,
    is_empty,
    minhash_from_hashes,
    minhash_signatures,
    permutations,
    signature_jaccard,
)
from dedup.shingle import shingle_hashes, shingle_strings

# reference digests of MurmurHash3 x64_128, seed 0 (as printed by mmh3.hash_bytes(...).hex())
MURMUR = {
    "": "00000000000000000000000000000000",
    "hello": "029bbd41b3a7d8cb191dae486a901e5b",
    "The quick brown fox jumps over the lazy dog": "6c1b07bc7bbc4be347939ac4a93c437a",
    "naïve café — 日本": "477da7c4d81dfe1ffd5e3e8423879fad",
}


def test_exact_hash_matches_reference_vectors_and_slices() -> None:
    texts = list(MURMUR)
    assert text_hash128_hex(pa.array(texts)).to_pylist() == list(MURMUR.values())
    large = pa.array(["junk", *texts], pa.large_string()).slice(1)
    assert text_hash128_hex(large).to_pylist() == list(MURMUR.values())
    chunked = pa.chunked_array([texts[:2], texts[2:]])
    assert text_hash128(chunked).shape == (4, 16)
    assert text_hash128_hex(pa.array([], pa.string())).to_pylist() == []


def test_exact_hash_rejects_nulls_and_non_strings() -> None:
    with pytest.raises(ValueError, match="1 null"):
        text_hash128_hex(pa.array(["a", None]))
    with pytest.raises(ValueError, match="int64"):
        text_hash128_hex(pa.array([1, 2]))


def test_word_shingles_follow_the_documented_normalization() -> None:
    assert shingle_strings("Hello, World!  foo-bar\tBAZ", ngram=2) == ["hello world", "world foo", "foo bar", "bar baz"]
    assert shingle_strings("a b", ngram=5) == ["a b"]  # shorter than ngram: one shingle of everything
    assert shingle_strings(" ,.; ", ngram=3) == []
    assert shingle_strings("Éa Éb", ngram=1) == ["Éa", "Éb"]  # only ASCII letters are folded
    assert shingle_strings("Ab, cd", ngram=3, mode="char") == ["ab ", "b c", " cd"]


def test_shingle_hashes_equal_exactly_when_shingles_equal() -> None:
    texts = ["One two three four five six", "one, TWO three four five six!", "one two three four five seven", ""]
    hashes, offsets = shingle_hashes(pa.array(texts), ngram=5)
    assert offsets.tolist() == [0, 2, 4, 6, 6]
    assert hashes[0:2].tolist() == hashes[2:4].tolist()  # same shingles after normalization
    assert hashes[4] == hashes[0] and hashes[5] != hashes[1]
    chars, coff = shingle_hashes(pa.array(["日本語です", "ab"]), ngram=2, mode="char")
    assert np.diff(coff).tolist() == [4, 1]  # counted in code points, not bytes


def test_shingle_and_minhash_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="ngram"):
        shingle_hashes(pa.array(["x"]), ngram=0)
    with pytest.raises(ValueError, match="'line'"):
        shingle_hashes(pa.array(["x"]), mode="line")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_perm"):
        permutations(0, 1)
    with pytest.raises(ValueError, match="seed"):
        permutations(8, -1)
    with pytest.raises(ValueError, match="offsets"):
        minhash_from_hashes(np.zeros(3, np.uint64), np.array([0, 2]))


def test_minhash_is_deterministic_batch_independent_and_seeded() -> None:
    texts = [f"document number {i} talks about topic {i % 7} and more words here" for i in range(50)]
    whole = minhash_signatures(pa.array(texts), num_perm=64)
    parts = np.concatenate([minhash_signatures(pa.array(texts[i : i + 7]), num_perm=64) for i in range(0, 50, 7)])
    assert whole.dtype == np.uint32 and whole.shape == (50, 64)
    assert np.array_equal(whole, parts)
    hashes, offsets = shingle_hashes(pa.array(texts))
    assert np.array_equal(minhash_from_hashes(hashes, offsets, num_perm=64), whole)
    assert not np.array_equal(minhash_signatures(pa.array(texts), num_perm=64, seed=7), whole)


def test_minhash_estimates_jaccard() -> None:
    # sets of 1000 word 1-grams sharing a known share: J = shared / (2000 - shared)
    rng = np.random.default_rng(3)
    estimates, truths = [], []
    for shared in (100, 333, 500, 667, 818, 1000):
        common = [f"w{x}" for x in rng.choice(10**6, shared, replace=False)]
        a = common + [f"a{x}" for x in range(1000 - shared)]
        b = common + [f"b{x}" for x in range(1000 - shared)]
        sig = minhash_signatures(pa.array([" ".join(a), " ".join(b)]), num_perm=256, ngram=1)
        estimates.append(float(signature_jaccard(sig[0], sig[1])))
        truths.append(shared / (2000 - shared))
    # standard error at K=256 is at most 0.031; allow 3.5 of them
    assert np.all(np.abs(np.array(estimates) - np.array(truths)) < 0.11), (estimates, truths)
    assert estimates[-1] == 1.0


def test_empty_documents_get_empty_signatures() -> None:
    sig = minhash_signatures(pa.array(["", "!!!", "real words here"]), num_perm=16)
    assert is_empty(sig).tolist() == [True, True, False]
    assert np.all(sig[0] == EMPTY)


def test_optimal_param_matches_datasketch() -> None:
    import datasketch.lsh as datasketch_lsh
    for threshold in (0.5, 0.7, 0.8, 0.9):
        for num_perm in (32, 128, 256):
            for weights in ((0.5, 0.5), (0.05, 0.95), (0.8, 0.2)):
                assert optimal_param(threshold, num_perm, *weights) == datasketch_lsh._optimal_param(
                    threshold, num_perm, *weights
                )


def test_lsh_parameters_are_checked_and_s_curve_is_monotone() -> None:
    curve = s_curve(np.linspace(0, 1, 101), 16, 8)
    assert curve[0] == 0.0 and curve[-1] == 1.0 and np.all(np.diff(curve) >= 0)
    assert resolve_bands(0.8, 128, 4, 32) == (4, 32)
    with pytest.raises(ValueError, match="threshold"):
        optimal_param(1.5, 128)
    with pytest.raises(ValueError, match="both"):
        resolve_bands(0.8, 128, 4, None)
    with pytest.raises(ValueError, match="num_perm=128"):
        resolve_bands(0.8, 128, 16, 9)


def test_band_keys_agree_exactly_on_equal_bands() -> None:
    sig = np.arange(3 * 12, dtype=np.uint32).reshape(3, 12)
    sig[1, :4] = sig[0, :4]  # band 0 equal, bands 1-2 differ
    keys = band_keys(sig, 3, 4)
    assert keys.dtype == np.int64 and keys.shape == (3, 3)
    assert keys[0, 0] == keys[1, 0]
    assert keys[0, 1] != keys[1, 1] and keys[0, 2] != keys[1, 2]
    with pytest.raises(ValueError, match="4 x 4"):
        band_keys(sig, 4, 4)


def test_small_graph_components_equal_union_find_and_long_chains_fall_back() -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 17, 300):
        for e in (0, n // 2, 3 * n):
            src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
            labels = connected_components(n, src, dst)  # numpy rounds (few edges)
            assert labels.tolist() == _union_find(n, src.astype(np.int64), dst.astype(np.int64)).tolist()
            assert (labels <= np.arange(n)).all() and (labels[labels] == labels).all()
    chain = rng.permutation(5000)
    assert _min_labels(5000, chain[1:], chain[:-1]) is None  # too many rounds: the union-find answers
    assert connected_components(5000, chain[1:], chain[:-1]).tolist() == [0] * 5000
