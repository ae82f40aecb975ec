"""Start-up of the loader: batches from the numpy path until the kernels have loaded, then the switch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from loader_shard_fixture import write_shards

from sharding import LoaderOptions, TokenLoader
from sharding.loader import kernels
from sharding.loader.batcher import HostBatcher

SEQ = 16
BATCH = 3
KEYS = ("input_ids", "labels", "position_ids", "cu_seqlens", "max_seqlen", "step")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(11)
    docs = [rng.integers(1, 60_000, size=int(n), dtype=np.int64) for n in rng.integers(0, 70, size=120)]
    return write_shards(tmp_path_factory.mktemp("switch") / "a", docs, docs_per_shard=15)


def _collect(loader: TokenLoader) -> list[dict]:
    return [{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in b.items()} for b in loader]


def _assert_same(got: dict, want: dict) -> None:
    for k in KEYS:
        assert np.array_equal(np.asarray(got[k]), np.asarray(want[k])), k
    assert got["cu_seqlens"].dtype in (np.int32, torch.int32)


def _loader(manifest: Path) -> TokenLoader:
    # several steps per kernel chunk, so the switch can fall inside what would be one chunk
    return TokenLoader(
        manifest, seq_len=SEQ, batch_size=BATCH, seed=4, steps_per_epoch=40, options=LoaderOptions(prefetch=2)
    )


def _count_chunks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    kernel_chunk = HostBatcher.chunk

    def counted(self, steps, pool=None):  # type: ignore[no-untyped-def]
        calls.append(len(steps))
        return kernel_chunk(self, steps, pool)

    monkeypatch.setattr(HostBatcher, "chunk", counted)
    return calls


def test_batches_before_the_kernels_load_are_the_reference_batches(manifest, monkeypatch) -> None:
    monkeypatch.setattr(kernels, "ready", lambda: False)
    monkeypatch.setattr(kernels, "start", lambda: None)
    kernel_calls = _count_chunks(monkeypatch)
    loader = _loader(manifest)
    got = _collect(loader)
    assert [int(b["step"]) for b in got] == list(range(40))
    assert kernel_calls == []  # every batch came from the numpy path
    for b in got:
        _assert_same(b, loader.batcher.reference_batch(int(b["step"])))
    # DataLoader workers' batches go through HostBatcher.batch, which takes the same path
    assert kernel_calls == []
    _assert_same(loader.batcher.batch(7), loader.batcher.reference_batch(7))
    assert kernel_calls == []


@pytest.mark.parametrize("switch_after", [1, 5, 13])
def test_switching_mid_run_gives_the_batches_of_a_kernel_only_run(
    manifest, monkeypatch, switch_after
) -> None:
    kernels.kernels()  # loaded: the unpatched run below uses the kernel from its first batch
    pure = _loader(manifest)
    assert pure.batcher.chunk_steps > 1
    want = _collect(pure)

    asked = [0]

    def ready() -> bool:
        asked[0] += 1
        return asked[0] > switch_after

    monkeypatch.setattr(kernels, "ready", ready)
    kernel_calls = _count_chunks(monkeypatch)
    reference_calls: list[int] = []
    reference = HostBatcher.reference_batch

    def counted(self, step):  # type: ignore[no-untyped-def]
        reference_calls.append(step)
        return reference(self, step)

    monkeypatch.setattr(HostBatcher, "reference_batch", counted)
    loader = _loader(manifest)
    got = []
    for b in loader:  # stop mid-epoch, then iterate again: the position carries over the switch
        got.append({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in b.items()})
        if len(got) == 20:
            break
    got += _collect(loader)
    assert reference_calls == list(range(switch_after))  # the numpy path served the first steps
    assert kernel_calls  # and the kernel the rest
    assert [int(b["step"]) for b in got] == list(range(40))
    for a, b in zip(got, want, strict=True):
        _assert_same(a, b)


def test_import_and_construction_do_not_import_numba(manifest) -> None:
    code = (
        "import sys; from sharding import TokenLoader; "
        f"TokenLoader({str(manifest)!r}, seq_len={SEQ}, batch_size={BATCH}); "
        "print(sorted(m for m in ('numba', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_failed_kernel_load_is_raised_not_hidden(monkeypatch) -> None:
    monkeypatch.setattr(kernels, "_error", [ImportError("no numba here")])
    with pytest.raises(ImportError, match="no numba here"):
        kernels.kernels()
