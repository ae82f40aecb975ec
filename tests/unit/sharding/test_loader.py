"""TokenLoader on local shards: packing, coverage, resume, workers, mixing and integrity checks."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from loader_shard_fixture import id_docs, write_shards

from sharding import CorruptShardError, LoaderOptions, ManifestError, TokenLoader
from sharding.loader import kernels

SEQ = 16
EOD = 0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    docs = id_docs(150, seed=7, max_len=30)
    return write_shards(tmp_path_factory.mktemp("ds") / "a", docs, docs_per_shard=20), docs


def _collect(loader: TokenLoader, n: int | None = None) -> list[dict]:
    out = []
    for batch in loader:
        out.append({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        if n is not None and len(out) == n:
            break
    return out


def _stream(batches: list[dict]) -> np.ndarray:
    return torch.cat([b["input_ids"].reshape(-1) for b in batches]).numpy()


def test_one_epoch_holds_every_document_once_whole(dataset) -> None:
    manifest, docs = dataset
    epoch_tokens = sum(len(d) + 1 for d in docs)
    steps = -(-epoch_tokens // (SEQ * 4))
    loader = TokenLoader(manifest, seq_len=SEQ, batch_size=4, seed=3, steps_per_epoch=steps)
    batches = _collect(loader)
    assert len(batches) == steps == len(loader)
    stream = _stream(batches)[:epoch_tokens]
    assert stream[-1] == EOD
    pieces = np.split(stream, np.flatnonzero(stream == EOD) + 1)[:-1]
    ids = [int(p[0]) for p in pieces]
    assert sorted(ids) == list(range(1, len(docs) + 1))
    for p in pieces:  # a piece is one whole document and its EOD
        assert (p[:-1] == p[0]).all() and len(p) - 1 == len(docs[int(p[0]) - 1])
    assert ids != sorted(ids)  # shuffled
    assert loader.state_dict()["epoch"] == 1


def test_packing_features_are_consistent(dataset) -> None:
    manifest, _ = dataset
    batch = _collect(TokenLoader(manifest, seq_len=SEQ, batch_size=3, seed=1), 1)[0]
    x, y, pos, cu = batch["input_ids"], batch["labels"], batch["position_ids"], batch["cu_seqlens"]
    assert x.dtype == y.dtype == pos.dtype == torch.int64 and x.shape == (3, SEQ)
    assert cu.dtype == torch.int32
    for r in range(3):
        for i in range(1, SEQ):
            expected_pos = 0 if x[r, i - 1] == EOD else pos[r, i - 1] + 1
            assert pos[r, i] == expected_pos
        assert pos[r, 0] == 0
        # labels are the next token, masked where the next token starts a new document
        for i in range(SEQ - 1):
            assert y[r, i] == (-100 if x[r, i] == EOD else x[r, i + 1])
    starts = torch.nonzero(pos.reshape(-1) == 0).reshape(-1)
    assert cu.tolist() == starts.tolist() + [3 * SEQ]
    assert batch["max_seqlen"] == int(torch.diff(cu).max())


def test_resume_continues_bit_identically(dataset) -> None:
    manifest, _ = dataset
    full = _collect(TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=9))
    first = TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=9)
    head = _collect(first, 5)
    state = first.state_dict()
    assert state["step"] == 5 and len(json.dumps(state)) < 300
    resumed = TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=9)
    resumed.load_state_dict(state)
    tail = _collect(resumed)
    assert len(head) + len(tail) == len(full)
    for a, b in zip(head + tail, full, strict=True):
        assert a["step"] == b["step"]
        for k in ("input_ids", "labels", "position_ids", "cu_seqlens"):
            assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("num_workers", [0, 2])
def test_input_ids_only_gives_the_same_tokens_and_resumes_with_all_fields(dataset, num_workers) -> None:
    manifest, _ = dataset
    full = _collect(TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=6))
    lean = TokenLoader(
        manifest, seq_len=SEQ, batch_size=2, seed=6, fields=("input_ids",), num_workers=num_workers
    )
    head = _collect(lean, 7)
    assert all(set(b) == {"input_ids", "step"} for b in head)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(head, full[:7], strict=True))
    resumed = TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=6)
    resumed.load_state_dict(lean.state_dict())  # the fields are not part of the position
    tail = _collect(resumed)
    assert [b["step"] for b in head + tail] == [b["step"] for b in full]
    for a, b in zip(tail, full[7:], strict=True):
        for k in ("input_ids", "labels", "position_ids", "cu_seqlens"):
            assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("producers", [1, 2])
def test_memory_stays_flat_over_epochs(dataset, producers) -> None:
    manifest, _ = dataset
    loader = TokenLoader(
        manifest, seq_len=SEQ, batch_size=2, seed=5, options=LoaderOptions(producers=producers), block_shards=2
    )

    def epochs(n: int) -> int:
        steps = 0
        for _ in range(n):
            steps += sum(1 for _ in loader)
        return steps

    kernels.kernels()  # the one-time kernel load (imports) is not the loader's memory
    epochs(2)  # buffer pools and per-epoch tables settle
    tracemalloc.start()
    try:
        epochs(1)
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        steps = epochs(8)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert steps == 8 * len(loader)
    assert grown < 32 * 1024, f"{grown} bytes more held after 8 more epochs"  # numpy arrays are traced too
    loader.close()


def test_stopping_and_iterating_again_continues(dataset) -> None:
    manifest, _ = dataset
    full = _collect(TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=4), 6)
    loader = TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=4)
    parts = _collect(loader, 2) + _collect(loader, 4)
    assert [b["step"] for b in parts] == list(range(6))
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(parts, full, strict=True))


def test_workers_give_the_same_batches(dataset) -> None:
    manifest, _ = dataset
    plain = _collect(TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=2, steps_per_epoch=9))
    workers = _collect(
        TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=2, steps_per_epoch=9, num_workers=2)
    )
    assert [b["step"] for b in workers] == list(range(9))
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(plain, workers, strict=True))


def test_state_from_another_configuration_is_rejected(dataset) -> None:
    manifest, _ = dataset
    state = TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=1).state_dict()
    with pytest.raises(ValueError, match="config_hash"):
        TokenLoader(manifest, seq_len=SEQ + 1, batch_size=2, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=2).load_state_dict(state)
    # another global batch is a place in the same token stream (tests/unit/sharding/test_loader_resume.py)
    TokenLoader(manifest, seq_len=SEQ, batch_size=4, seed=1).load_state_dict(state)


def test_elastic_resume_onto_fewer_ranks_keeps_the_remaining_data(dataset) -> None:
    manifest, _ = dataset
    four = [TokenLoader(manifest, seq_len=SEQ, batch_size=1, seed=5, rank=r, world_size=4) for r in range(4)]
    for loader in four:
        _collect(loader, 3)
    state = four[0].state_dict()
    two = [TokenLoader(manifest, seq_len=SEQ, batch_size=2, seed=5, rank=r, world_size=2) for r in range(2)]
    for loader in two:
        loader.load_state_dict(state)
    got = [_collect(loader, 2) for loader in two]
    single = _collect(TokenLoader(manifest, seq_len=SEQ, batch_size=4, seed=5), 5)[3:]
    for step in range(2):
        rows = torch.cat([got[r][step]["input_ids"] for r in range(2)])
        assert torch.equal(rows, single[step]["input_ids"])


def _corrupt(src: Path, dst: Path, edit) -> Path:
    import shutil

    shutil.copytree(src.parent, dst)
    edit(dst)
    return dst / "manifest.json"


def test_corrupt_shard_raises_naming_it_or_is_masked_by_policy(dataset, tmp_path, caplog) -> None:
    manifest, _ = dataset

    def flip(d: Path) -> None:
        data = bytearray((d / "shard-000002.tar").read_bytes())
        data[700] ^= 0xFF
        (d / "shard-000002.tar").write_bytes(bytes(data))

    bad = _corrupt(manifest, tmp_path / "bad", flip)
    with pytest.raises(CorruptShardError, match="shard-000002.tar.*sha256"):
        _collect(TokenLoader(bad, seq_len=SEQ, batch_size=8, seed=0))
    with caplog.at_level(logging.WARNING):
        batches = _collect(TokenLoader(bad, seq_len=SEQ, batch_size=8, seed=0, on_corrupt="skip"))
    assert "shard-000002.tar" in caplog.text
    good = _collect(TokenLoader(manifest, seq_len=SEQ, batch_size=8, seed=0))
    assert len(batches) == len(good)
    masked = torch.cat([b["labels"] for b in batches]) == -100
    assert masked.sum() > torch.cat([b["labels"] == -100 for b in good]).sum()
    # shard 2 holds documents 41..60; none of their tokens reach the model
    ids = torch.cat([b["input_ids"] for b in batches])
    assert not ((ids >= 41) & (ids <= 60)).any()


def _rewrite_member_name(d: Path, name: bytes) -> None:
    path = d / "shard-000000.tar"
    data = bytearray(path.read_bytes())
    data[0:100] = name.ljust(100, b"\0")
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\0 " % sum(data[0:512])
    path.write_bytes(bytes(data))
    m = json.loads((d / "manifest.json").read_text())
    m["shards"][0]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("name", [b"../000000000000.tokens", b"/etc/000000000000.tokens"])
def test_unsafe_member_names_are_rejected(dataset, tmp_path, name: bytes) -> None:
    manifest, _ = dataset
    bad = _corrupt(manifest, tmp_path / "bad", lambda d: _rewrite_member_name(d, name))
    loader = TokenLoader(bad, seq_len=SEQ, batch_size=2, seed=0, block_shards=8)
    with pytest.raises(CorruptShardError, match="unsafe name"):
        _collect(loader)


def test_mixing_follows_weights_and_keeps_each_source_whole(dataset, tmp_path) -> None:
    manifest_a, _ = dataset
    docs_b = id_docs(60, seed=8, max_len=30, first_id=1000)
    manifest_b = write_shards(tmp_path / "b", docs_b, docs_per_shard=15)
    loader = TokenLoader(
        {str(manifest_a): 0.25, str(manifest_b): 0.75}, seq_len=SEQ, batch_size=8, seed=1, steps_per_epoch=256
    )
    rows = torch.cat([b["input_ids"] for b in _collect(loader)])
    from_b = (rows >= 1000).any(dim=1) & ~((rows > 0) & (rows < 1000)).any(dim=1)
    assert abs(float(from_b.float().mean()) - 0.75) < 0.03
    # source b's windows, in order, are its own stream: whole documents one after another
    stream_b = rows[from_b].reshape(-1).numpy()
    pieces = np.split(stream_b, np.flatnonzero(stream_b == EOD) + 1)[1:-1]
    lengths = {1000 + i: len(d) for i, d in enumerate(docs_b)}
    assert all((p[:-1] == p[0]).all() and len(p) - 1 == lengths[int(p[0])] for p in pieces)


def test_mixing_other_tokenizers_raises(dataset, tmp_path) -> None:
    manifest_a, _ = dataset
    other = write_shards(tmp_path / "c", id_docs(10, seed=1), docs_per_shard=5, tokenizer_sha256="f" * 64)
    with pytest.raises(ManifestError, match="tokenizer_sha256"):
        TokenLoader([manifest_a, other], seq_len=SEQ, batch_size=2)


def test_names_go_through_the_resolver(dataset, tmp_path, monkeypatch) -> None:
    manifest, _ = dataset
    loader = TokenLoader("corpus@v3", seq_len=SEQ, batch_size=2, resolver=lambda name: str(manifest))
    assert len(loader) > 0
    monkeypatch.chdir(tmp_path)  # outside a project folder (no params.yaml) a name needs a resolver
    with pytest.raises(ValueError, match="resolver"):
        TokenLoader("corpus@v3", seq_len=SEQ, batch_size=2)


def test_sharding_imports_without_torch() -> None:
    code = "import sys; sys.modules['torch'] = None; import sharding; print(sharding.TokenLoader.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "TokenLoader"
