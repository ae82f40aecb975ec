"""Loader resume at the edges: a state saved at an epoch boundary, positions out of range, mixing resumed
across a mix block with two producers, elastic resume of a mix from four ranks to two, a zero-weight source,
DataLoader workers resumed mid-epoch with input_ids only, and load_state_dict while workers run."""

from __future__ import annotations

import json
import multiprocessing

import pytest
import torch
from loader_batches import (
    SEQ,
    _collect,
    _reference,
    _same,
)

from sharding import (
    LoaderOptions,
    TokenLoader,
)

# --------------------------------------------------------------------------------- epochs and resume


@pytest.mark.parametrize("producers", [1, 2])
def test_epoch_boundary_state_resumes_into_the_next_epoch(ds, short_chunks, producers) -> None:
    manifest, _ = ds
    kw = dict(
        seq_len=SEQ, batch_size=2, seed=3, steps_per_epoch=7, options=LoaderOptions(producers=producers, prefetch=2)
    )
    cont = TokenLoader(manifest, **kw)
    epoch0 = _collect(cont)
    state = cont.state_dict()
    assert (state["epoch"], state["step"]) == (1, 0)
    assert json.loads(json.dumps(state)) == state
    epoch1 = _collect(cont)
    assert [int(b["step"]) for b in epoch0 + epoch1] == list(range(14))
    resumed = TokenLoader(manifest, **kw)
    resumed.load_state_dict(state)
    _same(_collect(resumed), epoch1)
    # resuming at the last step of an epoch gives one batch, then the next epoch
    six = TokenLoader(manifest, **kw)
    _collect(six, 6)
    last = TokenLoader(manifest, **kw)
    last.load_state_dict(six.state_dict())
    one = _collect(last)
    _same(one, epoch0[6:])
    assert (last.state_dict()["epoch"], last.state_dict()["step"]) == (1, 0)
    for lo in (cont, resumed, six, last):
        lo.close()


def test_load_state_dict_rejects_out_of_range_positions_and_other_weights(ds, ds_b) -> None:
    manifest, _ = ds
    loader = TokenLoader({str(manifest): 0.5, str(ds_b): 0.5}, seq_len=SEQ, batch_size=2, seed=1)
    state = loader.state_dict()
    with pytest.raises(ValueError, match="out of range"):
        loader.load_state_dict({**state, "windows": state["epoch_end"]})
    with pytest.raises(ValueError, match="out of range"):
        loader.load_state_dict({**state, "epoch": -1})
    other = TokenLoader({str(manifest): 0.6, str(ds_b): 0.4}, seq_len=SEQ, batch_size=2, seed=1)
    with pytest.raises(ValueError, match="config_hash"):
        other.load_state_dict(state)
    swapped = TokenLoader({str(ds_b): 0.5, str(manifest): 0.5}, seq_len=SEQ, batch_size=2, seed=1)
    with pytest.raises(ValueError, match="config_hash|eras of source 0"):
        swapped.load_state_dict(state)  # source order fixes the stream ids, so it is part of the config


def test_mixing_resumes_exactly_across_a_mix_block_with_two_producers(ds, ds_b) -> None:
    manifest, _ = ds
    source = {str(manifest): 0.3, str(ds_b): 0.7}
    # global batch 8: a mixing block of 1024 windows is 128 steps; stop at 126, inside the last chunk
    kw = dict(
        seq_len=SEQ, batch_size=8, seed=4, steps_per_epoch=140, options=LoaderOptions(producers=2, prefetch=3)
    )
    full = _collect(TokenLoader(source, **kw))
    first = TokenLoader(source, **kw)
    head = _collect(first, 126)
    state = first.state_dict()
    first.close()
    resumed = TokenLoader(source, **kw)
    resumed.load_state_dict(state)
    tail = _collect(resumed)
    _same(head + tail, full)
    _same(tail[:4], _reference(resumed, range(126, 130)))
    rows = torch.cat([b["input_ids"] for b in full[120:140]])
    assert (rows >= 1000).any() and ((rows > 0) & (rows < 1000)).any()  # both sources on either side
    resumed.close()


def test_elastic_resume_with_mixing_four_ranks_to_two(ds, ds_b) -> None:
    manifest, _ = ds
    source = {str(manifest): 0.5, str(ds_b): 0.5}
    four = [TokenLoader(source, seq_len=SEQ, batch_size=1, seed=5, rank=r, world_size=4) for r in range(4)]
    for lo in four:
        _collect(lo, 5)
    states = {json.dumps(lo.state_dict(), sort_keys=True) for lo in four}
    assert len(states) == 1  # every rank saves the same position
    two = [TokenLoader(source, seq_len=SEQ, batch_size=2, seed=5, rank=r, world_size=2) for r in range(2)]
    for lo in two:
        lo.load_state_dict(four[0].state_dict())
    got = [_collect(lo, 3) for lo in two]
    single = _collect(TokenLoader(source, seq_len=SEQ, batch_size=4, seed=5), 8)[5:]
    for step in range(3):
        rows = torch.cat([got[r][step]["input_ids"] for r in range(2)])
        assert torch.equal(rows, single[step]["input_ids"])
        assert int(got[0][step]["step"]) == int(single[step]["step"]) == 5 + step


def test_a_zero_weight_source_leaves_the_other_sources_stream_unchanged(ds, ds_b) -> None:
    manifest, _ = ds
    alone = _collect(TokenLoader(manifest, seq_len=SEQ, batch_size=4, seed=2, steps_per_epoch=20))
    mixed = _collect(
        TokenLoader(
            {str(manifest): 1.0, str(ds_b): 0.0}, seq_len=SEQ, batch_size=4, seed=2, steps_per_epoch=20
        )
    )
    _same(mixed, alone)


def test_workers_resume_mid_epoch_with_mixing_and_input_ids_only(ds, ds_b) -> None:
    manifest, _ = ds
    source = [str(manifest), str(ds_b)]
    kw = dict(seq_len=SEQ, batch_size=2, seed=8, steps_per_epoch=11)
    full = _collect(TokenLoader(source, **kw))
    lean = TokenLoader(source, num_workers=2, fields=("input_ids",), **kw)
    head = _collect(lean, 5)
    assert all(set(b) == {"input_ids", "step"} for b in head)
    state = lean.state_dict()
    lean.close()
    resumed = TokenLoader(source, num_workers=2, **kw)
    resumed.load_state_dict(state)
    tail = _collect(resumed)
    _same(head, full[:5], ("input_ids",))
    _same(tail, full[5:])
    assert resumed.state_dict()["epoch"] == 1


def test_load_state_dict_mid_iteration_with_workers_stops_them_and_rewinds(ds) -> None:
    manifest, _ = ds
    kw = dict(seq_len=SEQ, batch_size=2, seed=0, steps_per_epoch=9)
    full = _collect(TokenLoader(manifest, **kw))
    loader = TokenLoader(manifest, num_workers=2, **kw)
    it = iter(loader)
    next(it)
    saved = loader.state_dict()
    next(it), next(it)
    assert len(multiprocessing.active_children()) == 2
    loader.load_state_dict(saved)
    assert multiprocessing.active_children() == []  # the workers of the old iteration are gone
    with pytest.raises(StopIteration):
        next(it)
    _same(_collect(loader), full[1:])
    loader.close()
