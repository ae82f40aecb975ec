"""Train a tiny GPT-2 on tokenmill shards with the Hugging Face Trainer, resuming the loader exactly.

    python examples/hf_trainer.py --manifest lake/demo/shards/manifest.json --max-steps 20 --out runs/hf
    python examples/hf_trainer.py ... --max-steps 40 --resume runs/hf/checkpoint-20

Three things differ from a Trainer on a ``datasets.Dataset``:

- ``get_train_dataloader`` returns ``DataLoader(loader, batch_size=None)`` itself. The Trainer's own
  DataLoader would batch the loader's batches again, and ``accelerator.prepare`` would make every rank
  read the whole stream and slice it; the loader already splits each global batch by rank
  (torch.distributed is initialised by the time the Trainer asks for the DataLoader).
- ``ignore_data_skip=True``: on resume the Trainer would otherwise re-read and drop the batches already
  trained; the loader jumps to its saved position instead.
- The position is saved beside each checkpoint (``token_loader.json``, by :class:`SaveLoaderPosition`)
  and loaded before ``train(resume_from_checkpoint=...)``.

Every trained batch appends a JSON line (global step, sha256 of its ``input_ids``) to
``<out>/rank<r>.jsonl``, which is how the integration test checks the resumed run. Needs
``pip install transformers accelerate`` (see docs/loader.md); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

from sharding import TokenLoader

POSITION_FILE = "token_loader.json"


class TokenTrainer(Trainer):
    """A Trainer fed by a TokenLoader; records which loader step each trained batch was."""

    def __init__(self, *args: Any, loader: TokenLoader, record: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loader = loader
        self.record = record
        self.trained_step: int | None = None

    def get_train_dataloader(self) -> DataLoader:
        return DataLoader(self.loader, batch_size=None)

    def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.trained_step = int(inputs["step"])
        ids = inputs["input_ids"]
        digest = hashlib.sha256(ids.cpu().numpy().tobytes()).hexdigest()
        with (self.record / f"rank{self.args.process_index}.jsonl").open("a") as f:
            f.write(json.dumps({"step": self.trained_step, "input_ids_sha256": digest}) + "\n")
        # a Hugging Face causal LM shifts its labels itself: labels=input_ids
        return super().compute_loss(model, {"input_ids": ids, "labels": ids}, *args, **kwargs)


class SaveLoaderPosition(TrainerCallback):
    """Writes the loader's position after the last trained batch into each checkpoint folder."""

    def __init__(self, trainer: TokenTrainer) -> None:
        self.trainer = trainer

    def on_save(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.trainer.trained_step is not None:
            folder = Path(str(args.output_dir)) / f"checkpoint-{state.global_step}"
            position = self.trainer.loader.state_dict(after_step=self.trainer.trained_step)
            (folder / POSITION_FILE).write_text(json.dumps(position))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, help="a shard manifest.json (or its folder)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoints and per-rank records go here")
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--save-every", type=int, default=10, help="checkpoint every N steps")
    parser.add_argument("--resume", default=None, help="a checkpoint folder to continue from")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=2, help="per rank")
    args = parser.parse_args()

    manifest = args.manifest if args.manifest.endswith(".json") else str(Path(args.manifest) / "manifest.json")
    vocab_size = int(json.loads(Path(manifest).read_text())["vocab_size"])
    training = TrainingArguments(
        output_dir=str(args.out),
        max_steps=args.max_steps,
        save_strategy="steps",
        save_steps=args.save_every,
        ignore_data_skip=True,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    # TrainingArguments has set up torch.distributed under torchrun: the loader takes rank and world from it
    loader = TokenLoader(manifest, seq_len=args.seq_len, batch_size=args.batch_size, seed=0,
                         fields=("input_ids",))
    if args.resume is not None:
        loader.load_state_dict(json.loads((Path(args.resume) / POSITION_FILE).read_text()))
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_positions=args.seq_len, n_embd=16, n_layer=1,
                                       n_head=2))
    args.out.mkdir(parents=True, exist_ok=True)
    trainer = TokenTrainer(model=model, args=training, loader=loader, record=args.out)
    trainer.add_callback(SaveLoaderPosition(trainer))
    trainer.train(resume_from_checkpoint=args.resume)


if __name__ == "__main__":
    main()
