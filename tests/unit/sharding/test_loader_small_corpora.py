"""Loader edge cases of corpus shape: a corpus smaller than one global batch, a one-document corpus shorter
than seq_len, more producers than chunks, uint32 tokens above the uint16 range, many one-document shards with
windows spanning many blocks, and an empty source mapping (which once raised IndexError)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from loader_batches import (
    EOD,
    SEQ,
    _collect,
    _loader_threads,
    _reference,
    _same,
)
from loader_shard_fixture import id_docs, write_shards

from sharding import (
    LoaderOptions,
    TokenLoader,
)

# ------------------------------------------------------------------------------------- tiny corpora


def test_a_corpus_smaller_than_one_global_batch_wraps_epochs_and_splits_ranks_evenly(tmp_path) -> None:
    docs = id_docs(3, seed=1, min_len=2, max_len=6)
    manifest = write_shards(tmp_path / "tiny", docs, docs_per_shard=3)  # one shard, ~15 stream tokens
    ranks = [
        TokenLoader(
            manifest, seq_len=SEQ, batch_size=4, seed=2, rank=r, world_size=2, options=LoaderOptions(producers=2)
        )
        for r in range(2)
    ]
    assert [len(lo) for lo in ranks] == [1, 1]  # 8 windows of 16 tokens, far more than the corpus
    per_rank = [[b for _ in range(3) for b in _collect(lo)] for lo in ranks]
    assert [len(p) for p in per_rank] == [3, 3]  # three epochs, the same steps on both ranks
    single = TokenLoader(manifest, seq_len=SEQ, batch_size=8, seed=2)
    whole = [b for _ in range(3) for b in _collect(single)]
    for step in range(3):  # rank r holds the r-th run of 4 windows: topology does not change the data
        rows = torch.cat([per_rank[r][step]["input_ids"] for r in range(2)])
        assert torch.equal(rows, whole[step]["input_ids"])
    stream = torch.cat([b["input_ids"].reshape(-1) for b in whole]).numpy()
    period = sum(len(d) + 1 for d in docs)
    # every data epoch (a reshuffle of the 3 documents) holds each document once, whole
    for e in range(len(stream) // period):
        pieces = np.split(
            stream[e * period : (e + 1) * period],
            np.flatnonzero(stream[e * period : (e + 1) * period] == EOD) + 1,
        )[:-1]
        assert sorted(int(p[0]) for p in pieces) == [1, 2, 3]
        assert all(len(p) - 1 == len(docs[int(p[0]) - 1]) for p in pieces)


@pytest.mark.parametrize("producers", [1, 2])
def test_seq_len_longer_than_a_one_document_corpus_repeats_it_exactly(tmp_path, producers) -> None:
    manifest = write_shards(tmp_path / "one", [np.full(5, 7)], docs_per_shard=1)
    loader = TokenLoader(
        manifest, seq_len=64, batch_size=2, seed=0, options=LoaderOptions(producers=producers), steps_per_epoch=3
    )
    got = [b for _ in range(2) for b in _collect(loader)]
    assert [int(b["step"]) for b in got] == list(range(6))
    stream = torch.cat([b["input_ids"].reshape(-1) for b in got]).numpy()
    assert np.array_equal(stream, np.tile([7, 7, 7, 7, 7, EOD], len(stream) // 6 + 1)[: len(stream)])
    _same(got, _reference(loader, range(6)))
    loader.close()


def test_more_producers_than_chunks_end_cleanly(tmp_path, short_chunks) -> None:
    manifest = write_shards(tmp_path / "few", id_docs(4, seed=3, max_len=10), docs_per_shard=2)
    before = _loader_threads()
    loader = TokenLoader(
        manifest, seq_len=SEQ, batch_size=2, seed=1, options=LoaderOptions(producers=4), steps_per_epoch=2
    )
    got = _collect(loader)
    _same(got, _reference(loader, range(2)))
    assert loader.state_dict()["epoch"] == 1
    loader.close()
    assert _loader_threads() <= before


# -------------------------------------------------------------------------------- token dtypes, shards


def test_uint32_tokens_above_the_uint16_range_arrive_intact(tmp_path) -> None:
    docs = id_docs(40, seed=4, max_len=20, first_id=70_000)
    manifest = write_shards(
        tmp_path / "u32", docs, docs_per_shard=8, token_dtype="uint32", vocab_size=200_000
    )
    epoch_tokens = sum(len(d) + 1 for d in docs)
    steps = -(-epoch_tokens // (SEQ * 2))
    loader = TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=5, steps_per_epoch=steps)
    got = _collect(loader)
    _same(got, _reference(loader, range(steps)))
    stream = torch.cat([b["input_ids"].reshape(-1) for b in got]).numpy()[:epoch_tokens]
    pieces = np.split(stream, np.flatnonzero(stream == EOD) + 1)[:-1]
    assert sorted(int(p[0]) for p in pieces) == list(range(70_000, 70_040))
    assert all((p[:-1] == p[0]).all() and len(p) - 1 == len(docs[int(p[0]) - 70_000]) for p in pieces)


def test_many_one_document_shards_with_windows_spanning_many_blocks(tmp_path, short_chunks) -> None:
    docs = id_docs(120, seed=5, min_len=1, max_len=6)
    manifest = write_shards(tmp_path / "many", docs, docs_per_shard=1)  # 120 shards of one document
    epoch_tokens = sum(len(d) + 1 for d in docs)
    # one window (129 tokens) spans ~30 shards, far more than the 16 maps a store keeps open
    kw = dict(seq_len=128, batch_size=2, seed=6, block_shards=2, steps_per_epoch=-(-epoch_tokens // 256))
    two = TokenLoader(manifest, options=LoaderOptions(producers=2), **kw)
    got = _collect(two)
    _same(got, _reference(two, range(len(two))))
    stream = torch.cat([b["input_ids"].reshape(-1) for b in got]).numpy()[:epoch_tokens]
    pieces = np.split(stream, np.flatnonzero(stream == EOD) + 1)[:-1]
    assert sorted(int(p[0]) for p in pieces) == list(range(1, 121))
    two.close()


# ------------------------------------------------------------------------------------------- sources


def test_an_empty_source_mapping_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        TokenLoader({}, seq_len=SEQ, batch_size=2)
