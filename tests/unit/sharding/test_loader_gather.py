"""The fused gather-and-pack kernel against the numpy path it replaces, its checks, and the buffer pool."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from loader_shard_fixture import write_shards

from sharding import CorruptShardError, LoaderOptions
from sharding.loader.batcher import HostBatcher, LoaderPlan
from sharding.loader.buffers import BufferPool
from sharding.loader.gather import SLOT_CLOSED, SLOT_OPEN, SLOT_SKIPPED, cu_seqlens, pack_rows
from sharding.loader.manifest import read_manifest
from sharding.loader.pack import pack_windows

KEYS = ("input_ids", "labels", "position_ids", "cu_seqlens", "max_seqlen", "step")


def _random_docs(n: int, seed: int, max_len: int, first_token: int = 1) -> list[np.ndarray]:
    # distinct random tokens inside each document, so a copy from the wrong offset shows
    rng = np.random.default_rng(seed)
    return [
        rng.integers(first_token, 60_000, size=int(k), dtype=np.int64)
        for k in rng.integers(0, max_len + 1, size=n)
    ]


def _batcher(
    sources: list[Path], *, seq_len: int, batch: int, world: int, rank: int, block_shards: int, **kw
) -> HostBatcher:
    manifests = [read_manifest(str(p)) for p in sources]
    plan = LoaderPlan.build(
        manifests,
        [float(m.stream_tokens.sum()) for m in manifests] if len(manifests) > 1 else [1.0],
        seq_len=seq_len,
        global_batch=batch * world,
        seed=5,
        block_shards=block_shards,
        mix_block_windows=64,
    )
    return HostBatcher(plan, rank=rank, world_size=world, **kw)


def _assert_same(got: dict, want: dict) -> None:
    for k in KEYS:
        assert np.array_equal(np.asarray(got[k]), np.asarray(want[k])), k
    assert got["input_ids"].dtype == got["labels"].dtype == got["position_ids"].dtype == np.int64
    assert got["cu_seqlens"].dtype == np.int32


@pytest.mark.parametrize(
    ("dtype", "seq_len", "batch", "world", "rank", "block_shards", "max_len"),
    [
        ("uint16", 16, 3, 1, 0, 2, 40),
        ("uint32", 7, 2, 3, 2, 1, 25),
        ("uint16", 64, 4, 2, 1, 3, 200),  # documents longer than a window
        ("uint32", 5, 1, 1, 0, 4, 3),  # many short and empty documents per window
    ],
)
def test_fused_kernel_equals_the_numpy_path(
    tmp_path, dtype, seq_len, batch, world, rank, block_shards, max_len
):
    docs = _random_docs(90, seed=seq_len, max_len=max_len)
    manifest = write_shards(tmp_path / "a", docs, docs_per_shard=12, token_dtype=dtype)
    hb = _batcher([manifest], seq_len=seq_len, batch=batch, world=world, rank=rank, block_shards=block_shards)
    epoch_steps = sum(len(d) + 1 for d in docs) // (seq_len * batch * world)
    steps = list(range(0, 3 * epoch_steps + 2))  # several epochs, so windows cross epoch ends
    got = hb.chunk(steps)
    assert [b["step"] for b in got] == steps
    for b in got:
        _assert_same(b, hb.reference_batch(b["step"]))
    chunked = [b for c in hb.chunks(0, len(steps), keep=2) for b in c]
    for a, b in zip(chunked, got, strict=True):
        _assert_same(a, b)


def test_fused_kernel_equals_the_numpy_path_when_mixing_and_skipping(tmp_path) -> None:
    a = write_shards(tmp_path / "a", _random_docs(60, seed=1, max_len=30), docs_per_shard=10)
    b = write_shards(
        tmp_path / "b", _random_docs(40, seed=2, max_len=50), docs_per_shard=8, token_dtype="uint32"
    )
    good = tmp_path / "good"
    shutil.copytree(b.parent, good)
    data = bytearray((b.parent / "shard-000001.tar").read_bytes())
    data[1000] ^= 0xFF
    (b.parent / "shard-000001.tar").write_bytes(bytes(data))
    hb = _batcher([a, b], seq_len=12, batch=4, world=2, rank=1, block_shards=2, on_corrupt="skip")
    got = hb.chunk(list(range(60)))
    for x in got:
        _assert_same(x, hb.reference_batch(x["step"]))
    intact = _batcher([a, good / "manifest.json"], seq_len=12, batch=4, world=2, rank=1, block_shards=2)
    ignored = sum(int((x["labels"] == -100).sum()) for x in got)
    # the skipped shard's documents are filler whose labels are ignored
    assert ignored > sum(int((x["labels"] == -100).sum()) for x in intact.chunk(list(range(60))))


def _table(docs: list[np.ndarray], dtype: str) -> tuple[list[np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Two buffers holding ``docs`` alternately, with a gap before each document; the flat stream."""
    bufs: list[list[int]] = [[], []]
    slot, src, start = [], [], [0]
    for i, d in enumerate(docs):
        sl = i % 2
        bufs[sl] += [7] * 3  # bytes no window may read
        slot.append(sl)
        src.append(len(bufs[sl]))
        bufs[sl] += d.tolist()
        start.append(start[-1] + len(d) + 1)
    arrays = [np.array(b, dtype=dtype) for b in bufs]
    table = {
        "addr": np.array([a.ctypes.data for a in arrays], dtype=np.int64),
        "length": np.array([len(a) for a in arrays], dtype=np.int64),
        "state": np.array([SLOT_OPEN, SLOT_OPEN], dtype=np.int8),
        "slot": np.array(slot, dtype=np.int64),
        "src": np.array(src, dtype=np.int64),
        "start": np.array(start, dtype=np.int64),
    }
    stream = np.concatenate([np.append(d, 0) for d in docs])
    return arrays, table, stream


def _run(table: dict, dtype: str, offsets: np.ndarray, s: int, **kw) -> tuple[dict, int]:
    r = len(offsets)
    out = {k: np.full((r, s), -7, dtype=np.int64) for k in ("input_ids", "labels", "position_ids")}
    seg, n_seg = np.zeros((r, s), dtype=np.int32), np.zeros(r, dtype=np.int64)
    need = np.zeros(len(table["state"]), dtype=np.uint8)
    missing = pack_rows(
        table["addr"], table["length"], table["state"], np.dtype(dtype), table["slot"], table["src"],
        table["start"], np.arange(r, dtype=np.int64), offsets, eod=0, ignore_index=-100,
        mask_cross_document=kw.get("mask", True), seg=seg, n_seg=n_seg, need=need, **out,
    )  # fmt: skip
    out["seg"], out["n_seg"], out["need"] = seg, n_seg, need
    return out, missing


@pytest.mark.parametrize("mask", [True, False])
def test_pack_rows_matches_pack_windows_on_random_windows(mask: bool) -> None:
    rng = np.random.default_rng(3)
    docs = _random_docs(50, seed=4, max_len=20)
    arrays, table, stream = _table(docs, "uint16")
    s = 9
    offsets = np.sort(rng.choice(len(stream) - s - 1, size=40, replace=False)).astype(np.int64)
    out, missing = _run(table, "uint16", offsets, s, mask=mask)
    assert missing == 0
    windows = np.stack([stream[o : o + s + 1] for o in offsets])
    starts = np.zeros(len(stream), dtype=bool)
    starts[table["start"][:-1]] = True
    doc_start = np.stack([starts[o : o + s + 1] for o in offsets])
    want = pack_windows(windows, doc_start, np.ones_like(doc_start), mask_cross_document=mask)
    for k in ("input_ids", "labels", "position_ids"):
        assert np.array_equal(out[k], want[k]), k
    cu, ptr, max_len = cu_seqlens(out["seg"], out["n_seg"], n_batches=len(offsets) // 4, batch=4)
    first = pack_windows(windows[:4], doc_start[:4], np.ones_like(doc_start[:4]), mask_cross_document=mask)
    assert cu[ptr[0] : ptr[1]].tolist() == first["cu_seqlens"].tolist()
    assert max_len[0] == first["max_seqlen"]


@pytest.mark.parametrize("drop", [("labels",), ("position_ids",), ("labels", "position_ids", "seg")])
def test_outputs_left_out_are_not_written_and_the_rest_are_unchanged(drop) -> None:
    docs = _random_docs(40, seed=8, max_len=15)
    arrays, table, stream = _table(docs, "uint16")
    table["state"][1] = SLOT_SKIPPED  # filler and ignored labels take their own branches
    offsets = np.arange(0, len(stream) - 12, 11, dtype=np.int64)
    full, _ = _run(table, "uint16", offsets, 11)
    r, s = len(offsets), 11
    out = {k: np.full((r, s), -7, dtype=np.int64) for k in ("input_ids", "labels", "position_ids")}
    seg, n_seg = np.full((r, s), -7, dtype=np.int32), np.zeros(r, dtype=np.int64)
    kept = {k: v for k, v in {**out, "seg": seg}.items() if k not in drop}
    pack_rows(
        table["addr"], table["length"], table["state"], np.dtype("uint16"), table["slot"], table["src"],
        table["start"], np.arange(r, dtype=np.int64), offsets, eod=0, ignore_index=-100,
        mask_cross_document=True, n_seg=n_seg, need=np.zeros(2, dtype=np.uint8),
        **{"labels": None, "position_ids": None, "seg": None, **kept},
    )  # fmt: skip
    for k in ("input_ids", "labels", "position_ids", "seg"):
        got = kept.get(k, out.get(k, seg))
        if k in drop:
            assert (got == -7).all(), k  # never touched
        else:
            assert np.array_equal(got, full[k]) if k != "seg" else all(
                np.array_equal(got[i, : n_seg[i]], full["seg"][i, : full["n_seg"][i]]) for i in range(r)
            ), k
    assert (n_seg == 0).all() if "seg" in drop else np.array_equal(n_seg, full["n_seg"])


@pytest.mark.parametrize(
    "fields", [("input_ids",), ("input_ids", "cu_seqlens"), ("labels", "input_ids", "position_ids")]
)
def test_batcher_fields_pick_outputs_without_changing_them(tmp_path, fields) -> None:
    docs = _random_docs(60, seed=9, max_len=40)
    manifest = write_shards(tmp_path / "a", docs, docs_per_shard=10)
    full = _batcher([manifest], seq_len=10, batch=3, world=2, rank=1, block_shards=2)
    some = _batcher([manifest], seq_len=10, batch=3, world=2, rank=1, block_shards=2, fields=fields)
    want_keys = set(fields) | {"step"} | ({"max_seqlen"} if "cu_seqlens" in fields else set())
    steps = list(range(25))
    made = some.chunk(steps, BufferPool(2, some._arrays)) + [some.reference_batch(k) for k in steps]
    for got in made:
        assert set(got) == want_keys
        want = full.reference_batch(got["step"])
        for k in want_keys:
            assert np.array_equal(np.asarray(got[k]), np.asarray(want[k])), k


def test_batcher_fields_are_checked(tmp_path) -> None:
    manifest = write_shards(tmp_path / "a", _random_docs(10, seed=1, max_len=9), docs_per_shard=5)
    for bad in [("labels",), ("input_ids", "attention_mask")]:
        with pytest.raises(ValueError, match="fields must include 'input_ids'"):
            _batcher([manifest], seq_len=4, batch=1, world=1, rank=0, block_shards=1, fields=bad)


def test_closed_slots_are_reported_and_skipped_slots_give_filler() -> None:
    docs = [np.arange(1, 6), np.arange(10, 14), np.arange(20, 23)]
    arrays, table, stream = _table(docs, "uint32")
    table["state"][1] = SLOT_CLOSED  # documents 1 lives in slot 1
    out, missing = _run(table, "uint32", np.array([0], dtype=np.int64), 14)
    assert missing == 1 and out["need"].tolist() == [0, 1]
    table["state"][1] = SLOT_SKIPPED
    out, missing = _run(table, "uint32", np.array([0], dtype=np.int64), 14)
    assert missing == 0
    assert out["input_ids"][0].tolist() == [1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0, 20, 21, 22]
    # targets that are filler, a skipped document's EOD, or start a document are ignored
    assert out["labels"][0].tolist() == [2, 3, 4, 5, 0, -100, -100, -100, -100, -100, -100, 21, 22, 0]
    assert out["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 0, 1, 2]
    assert out["seg"][0, : out["n_seg"][0]].tolist() == [0, 6, 11]


def test_pack_rows_rejects_bad_arguments() -> None:
    arrays, table, stream = _table([np.arange(1, 6), np.arange(10, 14)], "uint16")
    with pytest.raises(ValueError, match="run past the table"):
        _run(table, "uint16", np.array([len(stream) - 3], dtype=np.int64), 4)
    with pytest.raises(ValueError, match="token_dtype"):
        _run(table, "int64", np.array([0], dtype=np.int64), 4)
    table["length"][0] = 2  # document 0 now reaches past its shard
    with pytest.raises(ValueError, match="document 0 .* past the end of its shard"):
        _run(table, "uint16", np.array([0], dtype=np.int64), 4)
    with pytest.raises(ValueError, match="do not fit"):
        cu_seqlens(np.zeros((2, 4), dtype=np.int32), np.ones(2, dtype=np.int64), n_batches=3, batch=1)


def test_chunks_deliver_every_good_batch_before_a_corrupt_shard(tmp_path) -> None:
    manifest = write_shards(tmp_path / "a", _random_docs(80, seed=9, max_len=30), docs_per_shard=10)
    data = bytearray((manifest.parent / "shard-000005.tar").read_bytes())
    data[900] ^= 0xFF
    (manifest.parent / "shard-000005.tar").write_bytes(bytes(data))
    hb = _batcher([manifest], seq_len=8, batch=2, world=1, rank=0, block_shards=1)
    first_bad = 0
    while True:
        try:
            hb.reference_batch(first_bad)
        except CorruptShardError:
            break
        first_bad += 1
    got = []
    with pytest.raises(CorruptShardError, match="shard-000005.tar"):
        for chunk in hb.chunks(0, first_bad + 20):
            got += chunk
    assert [b["step"] for b in got] == list(range(first_bad))


def test_buffer_pool_reuses_arrays_only_when_no_view_is_left() -> None:
    pool = BufferPool(keep=2)
    a = pool.take(2, 3)
    assert pool.take(2, 3) is a  # nothing refers to it yet
    view = a["labels"][1:]
    b = pool.take(2, 3)
    assert b is not a
    del view
    assert pool.take(2, 3) is a
    tensor = torch.from_numpy(a["input_ids"][:1])[:, 1:]  # a view of a tensor of a numpy view
    c = pool.take(2, 3)
    assert c is b  # b is free again, a is held through the tensor
    del tensor
    assert pool.take(2, 3) is a
    assert pool.take(4, 3) is not a  # another shape gets its own arrays
    with pytest.raises(ValueError, match="keep"):
        BufferPool(keep=0)


def test_yielded_batches_stay_intact_while_held(tmp_path) -> None:
    from sharding import TokenLoader

    manifest = write_shards(tmp_path / "a", _random_docs(200, seed=6, max_len=40), docs_per_shard=25)
    loader = TokenLoader(manifest, seq_len=16, batch_size=2, seed=1, options=LoaderOptions(prefetch=1))
    held = [b for _, b in zip(range(40), loader, strict=False)]  # keeps every batch, no copies
    again = TokenLoader(manifest, seq_len=16, batch_size=2, seed=1, options=LoaderOptions(prefetch=1))
    for a, b in zip(held, again, strict=False):
        for k in ("input_ids", "labels", "position_ids"):
            assert torch.equal(a[k], b[k]), k


def test_kernel_reads_shards_only_after_verification(tmp_path) -> None:
    manifest = write_shards(tmp_path / "a", _random_docs(30, seed=2, max_len=30), docs_per_shard=10)
    bad = tmp_path / "bad"
    shutil.copytree(manifest.parent, bad)
    data = bytearray((bad / "shard-000000.tar").read_bytes())
    data[600] ^= 0xFF
    (bad / "shard-000000.tar").write_bytes(bytes(data))
    hb = _batcher([bad / "manifest.json"], seq_len=8, batch=2, world=1, rank=0, block_shards=4)
    with pytest.raises(CorruptShardError, match="sha256"):
        hb.chunk(list(range(hb.plan.steps_per_epoch)))  # an epoch reads every shard
