"""TokenLoader under torch's DataLoader: batch_size=None passes its batches on unchanged and keeps
the position; workers and auto-batching are refused with one line saying what to do instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from loader_shard_fixture import id_docs, write_shards
from torch.utils.data import DataLoader, IterableDataset

from sharding import TokenLoader

SEQ = 16


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = id_docs(120, seed=11, max_len=30)
    return write_shards(tmp_path_factory.mktemp("dl") / "a", docs, docs_per_shard=20)


def _loader(manifest: Path) -> TokenLoader:
    return TokenLoader(manifest, seq_len=SEQ, batch_size=3, seed=5, rank=0, world_size=1)


def _ids(batches: list[dict]) -> list[np.ndarray]:
    return [b["input_ids"].numpy().copy() for b in batches]


def test_a_dataloader_with_batch_size_none_hands_on_the_loaders_batches(manifest) -> None:
    plain = _ids(list(_loader(manifest)))
    loader = _loader(manifest)
    assert isinstance(loader, IterableDataset)
    dl = DataLoader(loader, batch_size=None)
    assert len(dl) == len(loader) == len(plain)
    through = list(dl)
    assert [int(b["step"]) for b in through] == list(range(len(plain)))
    assert all(b["input_ids"].shape == (3, SEQ) and b["input_ids"].dtype == torch.int64 for b in through)
    assert all(np.array_equal(a, b) for a, b in zip(_ids(through), plain, strict=True))


def test_position_saved_through_a_dataloader_resumes_exactly(manifest) -> None:
    plain = _ids(list(_loader(manifest)))
    loader = _loader(manifest)
    it = iter(DataLoader(loader, batch_size=None, pin_memory=False))
    for _ in range(4):
        next(it)
    state = loader.state_dict()
    assert state["step"] == 4  # the batches handed out, none made ahead
    resumed = _loader(manifest)
    resumed.load_state_dict(state)
    rest = _ids(list(DataLoader(resumed, batch_size=None)))
    assert len(rest) == len(plain) - 4
    assert all(np.array_equal(a, b) for a, b in zip(rest, plain[4:], strict=True))


@pytest.mark.parametrize("kwargs", [{}, {"batch_size": 2}])
def test_dataloader_auto_batching_is_refused_in_one_line(manifest, kwargs) -> None:
    with pytest.raises(ValueError) as err:
        next(iter(DataLoader(_loader(manifest), **kwargs)))
    assert "batch_size=None" in str(err.value) and "\n" not in str(err.value)


def test_dataloader_workers_are_refused_naming_the_loaders_num_workers(manifest) -> None:
    with pytest.raises(RuntimeError, match=r"pass num_workers=N to TokenLoader"):
        next(iter(DataLoader(_loader(manifest), batch_size=None, num_workers=1)))


def test_the_loaders_own_workers_still_run(manifest) -> None:
    plain = _ids(list(_loader(manifest)))
    loader = TokenLoader(manifest, seq_len=SEQ, batch_size=3, seed=5, rank=0, world_size=1, num_workers=2)
    assert all(np.array_equal(a, b) for a, b in zip(_ids(list(loader)), plain, strict=True))
