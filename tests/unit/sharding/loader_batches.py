"""Helpers of the loader edge-case tests: collecting and comparing batches, the numpy reference path, the
loader's threads, and a copy of a dataset with one corrupt shard."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import torch

from sharding import TokenLoader

SEQ = 16
EOD = 0
KEYS = ("input_ids", "labels", "position_ids", "cu_seqlens")


def _copy(batch: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _collect(loader: TokenLoader, n: int | None = None) -> list[dict]:
    out = []
    for batch in loader:
        out.append(_copy(batch))
        if n is not None and len(out) == n:
            break
    return out


def _same(got: list[dict], want: list[dict], keys: tuple[str, ...] = KEYS) -> None:
    assert [int(b["step"]) for b in got] == [int(b["step"]) for b in want]
    for a, b in zip(got, want, strict=True):
        for k in keys:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), (int(a["step"]), k)


def _reference(loader: TokenLoader, steps: range) -> list[dict]:
    """The specification: each step made alone by the numpy path, no threads, no chunks."""
    return [loader.batcher.reference_batch(s) for s in steps]


def _loader_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("token-loader-p", "shard-verify"))}


def _corrupt_copy(manifest: Path, dst: Path, shard: str = "shard-000002.tar") -> Path:
    shutil.copytree(manifest.parent, dst)
    data = bytearray((dst / shard).read_bytes())
    data[700] ^= 0xFF
    (dst / shard).write_bytes(bytes(data))
    return dst / "manifest.json"


def _pieces(stream: np.ndarray) -> list[np.ndarray]:
    """Whole documents (with their EOD) of a token stream, dropping a cut piece at either end."""
    return np.split(stream, np.flatnonzero(stream == EOD) + 1)[1:-1]
