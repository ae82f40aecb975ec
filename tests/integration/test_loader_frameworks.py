"""The loader in training frameworks: the examples under examples/ train with PyTorch Lightning (DDP on
CPU, two processes over gloo) and with the Hugging Face Trainer, save a checkpoint mid-run (across an
epoch boundary), and a run resumed from it trains exactly the batches the uninterrupted run trained."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loader_shard_fixture import id_docs, write_shards

from sharding import TokenLoader

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SEQ, BATCH = 64, 2


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # about 4 steps per epoch at a global batch of 4 windows, so 6 steps cross an epoch boundary
    return write_shards(tmp_path_factory.mktemp("fw") / "ds", id_docs(40, seed=4, max_len=50),
                        docs_per_shard=10, vocab_size=64)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _require(module: str) -> None:
    """Fail, saying why, where the framework is not installed or cannot be imported here."""
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                          env=_env(), timeout=300, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        pytest.fail(f"{module} cannot be imported in this environment ({last}); `pip install -e '.[test]'` "
                    "installs it (a CUDA torchvision beside a CPU torch, as the benchmark anchors pull in, "
                    "breaks the import)")


def _run(example: str, manifest: Path, out: Path, *args: str) -> None:
    cmd = [sys.executable, str(ROOT / "examples" / example), "--manifest", str(manifest), "--out", str(out),
           "--seq-len", str(SEQ), "--batch-size", str(BATCH), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600, check=False)
    assert proc.returncode == 0, f"{example} exited {proc.returncode}: {proc.stderr[-3000:]}"


def _trained(out: Path, rank: int) -> list[tuple[int, str]]:
    lines = (out / f"rank{rank}.jsonl").read_text().splitlines()
    return [(r["step"], r["input_ids_sha256"]) for r in map(json.loads, lines)]


def _expected(manifest: Path, rank: int, world: int, steps: int) -> list[tuple[int, str]]:
    """What rank ``rank`` of ``world`` must train: the loader iterated plainly."""
    loader = TokenLoader(manifest, seq_len=SEQ, batch_size=BATCH, seed=0, rank=rank, world_size=world)
    out: list[tuple[int, str]] = []
    while len(out) < steps:  # one `for` loop is one epoch
        for batch in loader:
            out.append((int(batch["step"]), hashlib.sha256(batch["input_ids"].numpy().tobytes()).hexdigest()))
            if len(out) == steps:
                break
    loader.close()
    return out


def test_lightning_ddp_checkpoint_restores_the_loader_position(manifest, tmp_path) -> None:
    _require("lightning.pytorch")
    assert len(TokenLoader(manifest, seq_len=SEQ, batch_size=BATCH, rank=0, world_size=2)) < 6
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    _run("lightning_ddp.py", manifest, first, "--max-steps", "6", "--save-every", "3", "--devices", "2")
    for rank in (0, 1):
        assert _trained(first, rank) == _expected(manifest, rank, 2, 6)
    assert _trained(first, 0) != _trained(first, 1)  # ranks train disjoint windows
    ckpt = first / "checkpoints" / "step=3.ckpt"
    _run("lightning_ddp.py", manifest, resumed, "--max-steps", "6", "--save-every", "3", "--devices", "2",
         "--resume", str(ckpt))
    for rank in (0, 1):
        assert _trained(resumed, rank) == _trained(first, rank)[3:]


def test_hf_trainer_checkpoint_restores_the_loader_position(manifest, tmp_path) -> None:
    _require("transformers.trainer")
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    _run("hf_trainer.py", manifest, first, "--max-steps", "6", "--save-every", "3")
    assert _trained(first, 0) == _expected(manifest, 0, 1, 6)
    _run("hf_trainer.py", manifest, resumed, "--max-steps", "6", "--save-every", "3",
         "--resume", str(first / "checkpoint-3"))
    assert _trained(resumed, 0) == _trained(first, 0)[3:]
