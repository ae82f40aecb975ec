"""Subcommands that run stages: `run` (all of them, or `--follow`), `ingest`, `curate`, `tokenize`, `shard`
and `train-tokenizer`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pipelines.cli.args import add_common_args, add_stage_args, load


def cmd_stage(args: argparse.Namespace) -> int:
    cfg = load(args)
    from pipelines.cli.tables import print_reports
    from pipelines.stages import run_stage

    print_reports([run_stage(args.command, cfg)], cfg)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if args.follow:
        from pipelines.stages.follow import run_follow

        cycles = run_follow(cfg)
        print(f"run --follow: {len(cycles)} cycles, {sum(c.records_read for c in cycles)} records read")
        return 0
    from pipelines.cli.tables import print_reports
    from pipelines.stages import run_pipeline

    print_reports(run_pipeline(cfg), cfg)
    return 0


def _train_tokenizer(args: argparse.Namespace) -> int:
    args.command = "train-tokenizer"
    return cmd_stage(args)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `run` and one subcommand per stage to the tokenmill subcommands."""
    commands: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
        ("run", "run all stages: ingest, curate, tokenize, shard (training a tokenizer first when the configured "
                "tokenizer file does not exist)", cmd_run),
        ("ingest", "read sources (local, S3, Kafka) into raw_docs and quarantine", cmd_stage),
        ("curate", "normalize, filter and deduplicate raw_docs into clean_docs and doc_decisions", cmd_stage),
        ("tokenize", "tokenize clean_docs into tokens", cmd_stage),
        ("shard", "write WebDataset tar shards, the manifest and the shards table", cmd_stage),
        ("train-tokenizer", "train a byte-level BPE tokenizer offline on clean_docs", _train_tokenizer),
    ]
    for name, help_text, func in commands:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_common_args(p)
        if name in ("curate", "tokenize", "shard", "train-tokenizer", "run"):
            add_stage_args(p)
        if name == "run":
            p.add_argument("--follow", action="store_true",
                           help="keep running: a cycle of all stages every follow.interval seconds or once "
                                "follow.min_records wait; SIGTERM finishes the cycle in progress, a second abandons it")
        if name == "train-tokenizer":
            p.add_argument("--retrain", action="store_true",
                           help="train even when the tokenizer file was trained with the same tokenize.train settings "
                                "(kept otherwise, so new data does not change the tokenizer)")
        p.set_defaults(func=func)
