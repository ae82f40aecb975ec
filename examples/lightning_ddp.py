"""Train a tiny language model on tokenmill shards with PyTorch Lightning, DDP on CPU (gloo).

    python examples/lightning_ddp.py --manifest lake/demo/shards/manifest.json --max-steps 20 --out runs/l
    python examples/lightning_ddp.py ... --max-steps 40 --resume runs/l/checkpoints/step=20.ckpt

Lightning starts the second process itself (it runs this script again with LOCAL_RANK=1). Every
rank appends one JSON line per trained batch to ``<out>/rank<r>.jsonl`` (global step, sha256 of its
``input_ids``), which is how the integration test checks that a resumed run trains exactly the
batches an uninterrupted one would. Needs ``pip install lightning`` (see docs/loader.md).

Why the position lives in the DataModule's ``state_dict`` hooks: Lightning fetches one batch ahead of
the one it trains, so the loader's own count is one batch past the checkpoint. The DataModule sees
each batch as it is trained (``on_before_batch_transfer``) and saves the position after it
(``TokenLoader.state_dict(after_step=...)``). The loader goes to Lightning inside a plain
``DataLoader(..., batch_size=None)``, which Lightning neither re-shards (the loader splits the global
batch by rank itself) nor checkpoints on its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from sharding import TokenLoader


class TokenData(L.LightningDataModule):
    """Training batches from a TokenLoader; its position is saved in and restored from checkpoints."""

    def __init__(self, manifest: str, *, seq_len: int, batch_size: int, seed: int) -> None:
        super().__init__()
        self.manifest, self.seq_len, self.batch_size, self.seed = manifest, seq_len, batch_size, seed
        self.loader: TokenLoader | None = None
        self.trained_step: int | None = None  # batch["step"] of the last batch handed to training_step
        self.restored: dict[str, Any] | None = None

    def train_dataloader(self) -> DataLoader:
        # torch.distributed is initialised by now: the loader takes rank and world size from it
        self.loader = TokenLoader(self.manifest, seq_len=self.seq_len, batch_size=self.batch_size, seed=self.seed)
        if self.restored is not None:
            self.loader.load_state_dict(self.restored)
        return DataLoader(self.loader, batch_size=None)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training:
            self.trained_step = int(batch["step"])
        return batch

    def state_dict(self) -> dict[str, Any]:
        if self.loader is None or self.trained_step is None:
            return {} if self.restored is None else {"loader": self.restored}
        return {"loader": self.loader.state_dict(after_step=self.trained_step)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.restored = state.get("loader")


class TinyLM(L.LightningModule):
    """An embedding and an output layer: enough to check the data path, not a model to train."""

    def __init__(self, vocab_size: int, record: Path) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, 8)
        self.head = torch.nn.Linear(8, vocab_size)
        self.record = record

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self.head(self.embed(batch["input_ids"]))
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
        digest = hashlib.sha256(batch["input_ids"].numpy().tobytes()).hexdigest()
        with (self.record / f"rank{self.global_rank}.jsonl").open("a") as f:
            f.write(json.dumps({"step": int(batch["step"]), "input_ids_sha256": digest}) + "\n")
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, help="a shard manifest.json (or its folder)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoints and per-rank records go here")
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--save-every", type=int, default=10, help="checkpoint every N steps")
    parser.add_argument("--resume", default=None, help="a checkpoint to continue from")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=2, help="per rank")
    parser.add_argument("--devices", type=int, default=2)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    manifest = args.manifest if args.manifest.endswith(".json") else str(Path(args.manifest) / "manifest.json")
    vocab_size = int(json.loads(Path(manifest).read_text())["vocab_size"])
    data = TokenData(manifest, seq_len=args.seq_len, batch_size=args.batch_size, seed=0)
    every = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=args.out / "checkpoints", filename="{step}", every_n_train_steps=args.save_every, save_top_k=-1
    )
    trainer = L.Trainer(
        strategy="ddp",
        accelerator="cpu",
        devices=args.devices,
        max_steps=args.max_steps,
        callbacks=[every],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(TinyLM(vocab_size, args.out), datamodule=data, ckpt_path=args.resume)


if __name__ == "__main__":
    main()
