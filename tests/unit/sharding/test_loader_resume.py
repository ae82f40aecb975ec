"""Resuming where the data or the batch changed: another global batch (ramp-up, fewer nodes), a later
manifest of a growing dataset, and ``follow=True`` picking up published manifests at epoch starts.

Every check is on the token stream the loader serves: a window's ``input_ids`` row is ``seq_len``
consecutive stream tokens and consecutive windows follow each other, so the rows of the served
batches, in step and rank order, concatenate to the stream itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from loader_shard_fixture import id_docs, write_shards

from sharding import LoaderOptions, TokenLoader
from sharding.loader import kernels
from sharding.loader.eras import StreamEras, adopt

SEQ = 16
EOD = 0


@pytest.fixture(scope="module")
def docs() -> list[np.ndarray]:
    kernels.kernels()
    return id_docs(72, seed=11, max_len=30)


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory, docs: list[np.ndarray]) -> tuple[Path, Path]:
    """(the manifest of the first 40 documents, a later one of all 72 that extends it)."""
    root = tmp_path_factory.mktemp("grown")
    return (
        write_shards(root / "v1", docs[:40], docs_per_shard=8),
        write_shards(root / "v2", docs, docs_per_shard=8),
    )


def _rows(loaders: list[TokenLoader], steps: int) -> list[np.ndarray]:
    """``steps`` global steps of ``loaders`` (one per rank, rank order) as window rows, in order,
    iterating on across epoch ends."""
    its = [iter(lo) for lo in loaders]
    out: list[np.ndarray] = []
    for _ in range(steps):
        batches = []
        for i, lo in enumerate(loaders):
            try:
                batches.append(next(its[i]))
            except StopIteration:
                its[i] = iter(lo)
                batches.append(next(its[i]))
        for b in batches:
            out.extend(b["input_ids"].numpy().copy())
    return out


def _epoch_rows(loaders: list[TokenLoader]) -> list[np.ndarray]:
    """The rest of the current epoch of ``loaders`` (one per rank) as window rows, in order."""
    steps = len(loaders[0]) - loaders[0].state_dict()["step"]
    epoch = loaders[0].state_dict()["epoch"]
    rows = _rows(loaders, steps)
    assert all(lo.state_dict()["epoch"] == epoch + 1 for lo in loaders)
    return rows


def _ranks(manifest: Path, batch_size: int, world: int, **kw: object) -> list[TokenLoader]:
    return [
        TokenLoader(manifest, seq_len=SEQ, batch_size=batch_size, seed=4, rank=r, world_size=world, **kw)
        for r in range(world)
    ]


def _multiset(rows: list[np.ndarray]) -> Counter[bytes]:
    return Counter(r.tobytes() for r in rows)


def _pieces(stream: np.ndarray) -> list[int]:
    """Document ids of the whole documents (id tokens then EOD) in ``stream``, which starts at a
    document start; asserts every piece is one whole document."""
    cut = np.split(stream, np.flatnonzero(stream == EOD) + 1)[:-1]
    assert all((p[:-1] == p[0]).all() for p in cut)
    return [int(p[0]) for p in cut]


# ------------------------------------------------------------------------------------ eras (pure)


def test_stream_eras_locate_every_offset_in_the_epoch_that_holds_it() -> None:
    sizes = np.array([5, 7, 3, 4])
    eras = StreamEras(sizes, [(0, 2), (2, 3), (5, 4)])
    lengths = [12, 12, 15, 15, 15, 19, 19]  # epochs 0..6
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for e, start in enumerate(starts[:-1].tolist()):
        assert eras.epoch_start(e) == start and eras.epoch_tokens(e) == lengths[e]
        for pos in (start, start + lengths[e] - 1):
            assert eras.locate(pos) == (e, start)
    assert [eras.n_shards(e) for e in range(7)] == [2, 2, 3, 3, 3, 4, 4]
    with pytest.raises(ValueError, match="increase"):
        StreamEras(sizes, [(0, 2), (0, 3)])
    with pytest.raises(ValueError, match="manifest has 4"):
        StreamEras(sizes, [(0, 5)])


def test_adopting_a_manifest_keeps_the_epochs_begun() -> None:
    eras = adopt([(0, 5)], current_epoch=0, n_shards=9)
    assert eras == ((0, 5), (1, 9))
    # adopted again before epoch 1 began: the planned era is replaced, not stacked
    assert adopt(eras, current_epoch=0, n_shards=11) == ((0, 5), (1, 11))
    assert adopt(eras, current_epoch=1, n_shards=9) == eras


# ------------------------------------------------------------------------------- another global batch


def test_batch_size_ramp_up_mid_epoch_serves_each_window_of_the_epoch_once(grown) -> None:
    manifest = grown[1]
    reference = _epoch_rows(_ranks(manifest, 1, 1))  # one window per step: the epoch's windows
    n = len(reference)
    small = _ranks(manifest, 2, 1)
    head = _rows(small, 5)  # 10 windows at a global batch of 2
    left = n - len(head)
    big = next(b for b in range(7, 2, -1) if left % b == 0 and left // b >= 2)
    ramped = _ranks(manifest, big, 1)
    ramped[0].load_state_dict(small[0].state_dict())
    tail = _epoch_rows(ramped)
    assert _multiset(head + tail) == _multiset(reference)
    assert len(head + tail) == n
    # the stream goes on where it stopped: the next epoch starts with the reference's next windows
    after = _rows(ramped, 1)
    assert _multiset(after) == _multiset(_rows(_ranks(manifest, 1, 1), n + big)[n:])


def test_fewer_nodes_at_the_same_per_rank_batch_continue_on_the_windows_not_served(grown) -> None:
    manifest = grown[1]
    reference = _rows(_ranks(manifest, 1, 1), 80)
    four = _ranks(manifest, 2, 4)  # global batch 8
    head = _rows(four, 3)
    two = _ranks(manifest, 2, 2)  # the same per-rank batch on half the nodes: global batch 4
    for lo in two:
        lo.load_state_dict(four[0].state_dict())
    tail = _rows(two, 5)
    three = _ranks(manifest, 3, 1)  # and a batch that does not divide what was served before
    three[0].load_state_dict(two[1].state_dict())
    rest = _rows(three, 12)
    served = head + tail + rest
    assert len(served) == 24 + 20 + 36 == 80
    # in order: none twice, none skipped, whatever the batch
    assert all(np.array_equal(a, b) for a, b in zip(served, reference, strict=True))
    assert [lo.state_dict()["global_step"] for lo in three] == [3 + 5 + 12]


def test_a_state_left_with_fewer_windows_than_the_new_batch_starts_the_next_epoch(grown) -> None:
    manifest = grown[1]
    one = _ranks(manifest, 1, 1)[0]
    n = len(one)
    _rows([one], n - 2)  # two windows left in epoch 0
    big = _ranks(manifest, 4, 1)[0]
    big.load_state_dict(one.state_dict())
    state = big.state_dict()
    assert (state["epoch"], state["step"], state["windows"]) == (1, 0, n - 2)
    # the two windows left over open epoch 1: nothing is dropped
    got = _rows([big], 1)
    assert all(np.array_equal(a, b) for a, b in zip(got, _rows(_ranks(manifest, 1, 1), n + 2)[n - 2 :], strict=True))


# ----------------------------------------------------------------------------- a growing dataset


def _stream(rows: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(rows)


def test_state_on_a_manifest_loads_on_a_later_one_that_extends_it(grown, docs) -> None:
    old, new = grown
    first_tokens = sum(len(d) + 1 for d in docs[:40])
    all_tokens = sum(len(d) + 1 for d in docs)
    plain = _ranks(old, 2, 1)[0]
    head = _rows([plain], 7)
    saved = plain.state_dict()
    moved = _ranks(new, 2, 1)[0]
    moved.load_state_dict(saved)
    steps = -(-(first_tokens + all_tokens - 7 * 2 * SEQ) // (2 * SEQ))
    stream = _stream(head + _rows([moved], steps))
    # the epoch begun finishes on the saved shards, exactly as without the move
    untouched = _stream(_rows([_ranks(old, 2, 1)[0]], -(-first_tokens // (2 * SEQ))))
    assert np.array_equal(stream[:first_tokens], untouched[:first_tokens])
    assert sorted(_pieces(stream[:first_tokens])) == list(range(1, 41))
    # the new documents join at the next epoch, which reads every document once
    assert sorted(_pieces(stream[first_tokens : first_tokens + all_tokens])) == list(range(1, 73))
    assert moved.state_dict()["eras"] == [[[0, 5], [1, 9]]]
    # the grown state resumes on the grown manifest, not on the older one
    again = _ranks(new, 2, 1)[0]
    again.load_state_dict(moved.state_dict())
    assert np.array_equal(_stream(_rows([again], 3)), _stream(_rows([moved], 3)))
    with pytest.raises(ValueError, match="do not fit its 5 shards"):
        _ranks(old, 2, 1)[0].load_state_dict(moved.state_dict())


def test_a_manifest_that_does_not_extend_the_saved_one_is_refused(grown, docs, tmp_path) -> None:
    old, _ = grown
    rebuilt = write_shards(tmp_path / "rebuilt", docs[::-1], docs_per_shard=8)  # same documents, other shards
    plain = _ranks(old, 2, 1)[0]
    _rows([plain], 2)
    with pytest.raises(ValueError, match="config_hash"):
        _ranks(rebuilt, 2, 1)[0].load_state_dict(plain.state_dict())


# ------------------------------------------------------------------------------------ follow=True


def _follower(where: list[Path], **kw: object) -> TokenLoader:
    resolve: Callable[[str], str] = lambda name: str(where[0])  # noqa: E731
    return TokenLoader("live", seq_len=SEQ, batch_size=2, seed=4, resolver=resolve, follow=True, **kw)


def test_follow_moves_onto_a_published_manifest_at_the_next_epoch_without_restart(grown, docs) -> None:
    old, new = grown
    first_tokens = sum(len(d) + 1 for d in docs[:40])
    all_tokens = sum(len(d) + 1 for d in docs)
    where = [old]
    loader = _follower(where)
    it = iter(loader)
    rows = [next(it)["input_ids"].numpy().copy() for _ in range(3)]
    rows = [r for b in rows for r in b]
    where[0] = new  # published mid-epoch: the epoch in progress does not change
    rows += [r for b in it for r in b["input_ids"].numpy().copy()]
    assert loader.state_dict()["eras"] == [[[0, 5]]]
    while sum(len(r) for r in rows) < first_tokens + all_tokens:
        rows += [r for b in loader for r in b["input_ids"].numpy().copy()]
    assert loader.state_dict()["eras"] == [[[0, 5], [1, 9]]]
    stream = _stream(rows)
    assert sorted(_pieces(stream[:first_tokens])) == list(range(1, 41))
    assert sorted(_pieces(stream[first_tokens : first_tokens + all_tokens])) == list(range(1, 73))
    # a follower resumed from its state reads the same stream
    again = _follower([new])
    again.load_state_dict(loader.state_dict())
    assert np.array_equal(_stream(_rows([again], 4)), _stream(_rows([loader], 4)))


def test_follow_ignores_a_manifest_that_does_not_extend_the_stream(grown, docs, tmp_path, caplog) -> None:
    old, _ = grown
    rebuilt = write_shards(tmp_path / "rebuilt", docs[::-1], docs_per_shard=8)
    where = [old]
    loader = _follower(where)
    _rows([loader], len(loader))
    where[0] = rebuilt
    _rows([loader], 1)
    assert loader.state_dict()["eras"] == [[[0, 5]]]
    assert "does not extend" in caplog.text


def test_follow_on_several_ranks_needs_torch_distributed(grown) -> None:
    with pytest.raises(ValueError, match="torch.distributed"):
        TokenLoader(grown[0], seq_len=SEQ, batch_size=2, rank=0, world_size=2, follow=True)


def test_state_is_small_and_json(grown) -> None:
    import json

    loader = _ranks(grown[1], 2, 1)[0]
    _rows([loader], 3)
    state = loader.state_dict()
    assert json.loads(json.dumps(state)) == state and len(json.dumps(state)) < 400


def _follow_rank(rank: int, store: str, old: str, new: str, sees_new_from: int, steps: int, out: str) -> None:
    """One rank of a two-process gloo group following a dataset: it reads ``old`` until its
    ``sees_new_from``-th read of the source (the construction is read 0), ``new`` after."""
    import json

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    reads = [0]

    def resolve(name: str) -> str:
        reads[0] += 1
        return new if reads[0] - 1 >= sees_new_from else old

    loader = TokenLoader("live", seq_len=SEQ, batch_size=2, seed=4, resolver=resolve, follow=True, rank=rank, world_size=2)
    rows: list[np.ndarray] = []
    states = []
    while len(rows) < steps * 2:
        rows += [r for b in loader for r in b["input_ids"].numpy().copy()]
        states.append(loader.state_dict())
    dist.barrier()
    np.save(f"{out}-{rank}.npy", np.stack(rows))
    Path(f"{out}-{rank}.json").write_text(json.dumps(states))
    dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes with torch: ~20 s
def test_follow_ranks_that_read_different_manifests_move_at_the_same_step(grown, docs, tmp_path) -> None:
    import json
    import multiprocessing

    old, new = grown
    first_tokens = sum(len(d) + 1 for d in docs[:40])
    all_tokens = sum(len(d) + 1 for d in docs)
    steps = -(-(2 * first_tokens + all_tokens) // (4 * SEQ))
    ctx = multiprocessing.get_context("spawn")
    out = str(tmp_path / "rank")
    # rank 0 sees the new manifest at the first epoch start already, rank 1 only at the second
    procs = [
        ctx.Process(target=_follow_rank, args=(r, str(tmp_path / "store"), str(old), str(new), 1 + r, steps, out))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    states = [json.loads(Path(f"{out}-{r}.json").read_text()) for r in range(2)]
    assert states[0] == states[1]  # the same position and eras after every epoch, on both ranks
    # states[k] is saved after epoch k; at epoch 1's start rank 0 alone had the new manifest, so
    # both stayed; at epoch 2's start both had it and both moved
    assert [s["eras"] for s in states[0][:3]] == [[[[0, 5]]], [[[0, 5]]], [[[0, 5], [2, 9]]]]
    rows = [np.load(f"{out}-{r}.npy") for r in range(2)]
    per_rank = 2  # rows per rank and step
    ordered = [rows[r][i : i + per_rank] for i in range(0, len(rows[0]), per_rank) for r in range(2)]
    stream = _stream([x for block in ordered for x in block])
    cuts = np.cumsum([0, first_tokens, first_tokens, all_tokens])
    assert sorted(_pieces(stream[cuts[0] : cuts[1]])) == list(range(1, 41))
    assert sorted(_pieces(stream[cuts[1] : cuts[2]])) == list(range(1, 41))
    assert sorted(_pieces(stream[cuts[2] : cuts[3]])) == list(range(1, 73))


def test_state_after_an_earlier_step_resumes_after_that_step_across_epochs_and_batch_changes(grown) -> None:
    manifest = grown[1]
    reference = _rows(_ranks(manifest, 1, 1), 200)
    first = _ranks(manifest, 2, 1)[0]
    _rows([first], 3)
    ramped = _ranks(manifest, 3, 1)[0]
    ramped.load_state_dict(first.state_dict())
    n = len(ramped) + 2  # past the epoch's end: the trainer fetched two batches ahead
    _rows([ramped], n)
    for back in (1, 2, n - 1):
        trained = ramped.state_dict()["global_step"] - 1 - back
        resumed = _ranks(manifest, 3, 1)[0]
        resumed.load_state_dict(ramped.state_dict(after_step=trained))
        served = 6 + 3 * (trained + 1 - 3)  # windows up to and including step `trained`
        got = _rows([resumed], 2)
        assert all(np.array_equal(a, b) for a, b in zip(got, reference[served : served + 6], strict=True))
    with pytest.raises(ValueError, match="load_state_dict"):
        ramped.state_dict(after_step=1)  # served before the load, by the other batch size


def test_follow_stays_when_the_manifest_cannot_be_read_and_moves_once_it_can(grown, tmp_path, caplog) -> None:
    old, new = grown
    half = tmp_path / "half" / "manifest.json"  # a manifest caught while being replaced
    half.parent.mkdir()
    half.write_bytes(new.read_bytes()[:100])
    where = [old]
    loader = _follower(where)
    _rows([loader], len(loader))
    where[0] = half
    _rows([loader], len(loader))  # epoch 1 starts: unreadable, so it stays
    assert loader.state_dict()["eras"] == [[[0, 5]]]
    assert "cannot read" in caplog.text
    where[0] = new
    _rows([loader], 1)  # epoch 2 starts: moves
    assert loader.state_dict()["eras"][0][-1][1] == 9


# written by the first state format (sharding/loader.py at 7ed780d) after 3 steps of _ranks(grown[1], 2, 1)
V1_STATE = {"version": 1, "epoch": 0, "step": 3, "global_batch": 2, "seed": 4,
            "config_hash": "e72225c57dc073c0f27bed8476b2b30241748a63815c6ff698f72a259744611f"}


def test_a_state_of_the_first_format_resumes_where_it_was_saved(grown) -> None:
    manifest = grown[1]
    resumed = _ranks(manifest, 2, 1)[0]
    resumed.load_state_dict(V1_STATE)
    assert (resumed.state_dict()["windows"], resumed.state_dict()["global_step"]) == (6, 3)
    assert all(np.array_equal(a, b) for a, b in zip(_rows([resumed], 2), _rows(_ranks(manifest, 1, 1), 10)[6:], strict=True))
    with pytest.raises(ValueError, match="config_hash"):
        _ranks(grown[0], 2, 1)[0].load_state_dict(V1_STATE)  # other data


def test_a_loader_that_already_ran_resumes_another_batch_size_with_all_its_producers(grown, monkeypatch) -> None:
    from sharding.loader import batcher as loader_plan

    monkeypatch.setattr(loader_plan, "CHUNK_TOKENS", 3 * SEQ)  # one step per chunk: both producers pack
    manifest = grown[1]
    reference = _rows(_ranks(manifest, 1, 1), 10 + 18)
    busy = _ranks(manifest, 3, 1, options=LoaderOptions(producers=2))[0]
    _rows([busy], 4)  # its producer threads and their batchers exist now
    small = _ranks(manifest, 2, 1)[0]
    _rows([small], 5)
    busy.load_state_dict(small.state_dict())
    got = _rows([busy], 6)
    assert all(np.array_equal(a, b) for a, b in zip(got, reference[10:], strict=True))
