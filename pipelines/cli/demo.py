"""Subcommand `tokenmill demo`: every stage on the bundled sample corpus (lake/demo), the audit, and a first
batch from the loader when torch is installed."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from pipelines.cli.args import add_common_args, load
from pipelines.config import Config

log = logging.getLogger("tokenmill")

DEMO_OVERRIDES = [
    "lake.root=lake/demo",
    "lake.metrics_dir=lake/demo/metrics",
    "tokenize.tokenizer=lake/demo/tokenizer.json",
    "shard.target_bytes=1048576",
]


def cmd_demo(args: argparse.Namespace) -> int:
    cfg = load(args, DEMO_OVERRIDES)
    from pipelines.cli.tables import print_audit, print_reports
    from pipelines.lake.spark import build_session
    from pipelines.ops.audit import audit
    from pipelines.stages import run_stage

    root = Path(cfg.lake.root)
    if root.exists() and not args.keep:
        log.info("demo: removing previous demo lake %s", root)
        shutil.rmtree(root)
    spark = build_session(cfg.spark)
    reports = [run_stage("ingest", cfg, spark), run_stage("curate", cfg, spark),
               run_stage("train-tokenizer", cfg, spark), run_stage("tokenize", cfg, spark),
               run_stage("shard", cfg, spark)]
    print_reports(reports, cfg)
    result = audit(cfg)
    print_audit(result)
    result.raise_if_failed()
    _demo_loader(cfg)
    return 0


def _demo_loader(cfg: Config) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("loader: torch is not installed (pip install 'tokenmill[loader]'); skipped the loader check")
        return
    from sharding import TokenLoader

    manifest = str(Path(cfg.shards_uri()) / "manifest.json")  # the copy of the current manifest
    loader = TokenLoader(manifest, seq_len=512, batch_size=8, seed=0, rank=0, world_size=1)
    batch = next(iter(loader))
    ids = batch["input_ids"]
    print(f"loader: first batch input_ids {tuple(ids.shape)} {ids.dtype} from {manifest}")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `demo` to the tokenmill subcommands."""
    help_text = "run everything on the bundled sample corpus (lake/demo) and audit it"
    p = sub.add_parser("demo", help=help_text, description=help_text)
    add_common_args(p)
    p.add_argument("--keep", action="store_true", help="keep the previous demo lake instead of starting fresh")
    p.set_defaults(func=cmd_demo)
