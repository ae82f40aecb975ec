"""The `tokenmill` command line: one subcommand per stage, `run` for all of them, `demo`, `audit` and friends.

Every command takes `--config FILE` (default params.yaml) and repeatable `--set dotted.key=VALUE` overrides.
Failures exit non-zero with one line on stderr: every TokenmillError exits with its own code (2 for a bad
config, 3 for a missing dependency, 4 for a failed audit, ...; the table is in docs/errors.md), anything else
with 1.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipelines import gc_cli, versions_cli
from pipelines.config import Config, load_config
from pipelines.errors import ConfigError, TokenmillError
from pipelines.secrets import install_log_redaction

log = logging.getLogger("tokenmill")

DEMO_OVERRIDES = [
    "lake.root=lake/demo",
    "lake.metrics_dir=lake/demo/metrics",
    "tokenize.tokenizer=lake/demo/tokenizer.json",
    "shard.target_bytes=1048576",
]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default="params.yaml", help="YAML config file (default: params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, VALUE parsed as YAML (repeatable), e.g. shard.target_bytes=1048576")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def _stage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-version", metavar="NAME", default=None,
                   help="read the input tables at this dataset version (same as --set lake.read_version=NAME)")


def _config(args: argparse.Namespace, extra: Sequence[str] = ()) -> Config:
    version = getattr(args, "from_version", None)
    flags = [*([f"lake.read_version={version}"] if version else []),
             *(["tokenize.train.retrain=true"] if getattr(args, "retrain", False) else [])]
    return load_config(args.config, [*extra, *args.overrides, *flags])


def cmd_stage(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from pipelines.stages import run_stage
    from pipelines.summary import print_reports

    print_reports([run_stage(args.command, cfg)], cfg)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.follow:
        from pipelines.follow import run_follow

        cycles = run_follow(cfg)
        print(f"run --follow: {len(cycles)} cycles, {sum(c.records_read for c in cycles)} records read")
        return 0
    from pipelines.stages import run_pipeline
    from pipelines.summary import print_reports

    print_reports(run_pipeline(cfg), cfg)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from pipelines.audit import audit
    from pipelines.summary import print_audit

    result = audit(cfg)
    print_audit(result)
    result.raise_if_failed()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    cfg = _config(args, DEMO_OVERRIDES)
    from pipelines.audit import audit
    from pipelines.spark_session import build_session
    from pipelines.stages import run_stage
    from pipelines.summary import print_audit, print_reports

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


def _train_tokenizer(args: argparse.Namespace) -> int:
    args.command = "train-tokenizer"
    return cmd_stage(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenmill", description="Raw text to curated, deduplicated, tokenized Iceberg tables and token shards."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
        ("run", "run all stages: ingest, curate, tokenize, shard (training a tokenizer first when the configured "
                "tokenizer file does not exist)", cmd_run),
        ("ingest", "read sources (local, S3, Kafka) into raw_docs and quarantine", cmd_stage),
        ("curate", "normalize, filter and deduplicate raw_docs into clean_docs and doc_decisions", cmd_stage),
        ("tokenize", "tokenize clean_docs into tokens", cmd_stage),
        ("shard", "write WebDataset tar shards, the manifest and the shards table", cmd_stage),
        ("train-tokenizer", "train a byte-level BPE tokenizer offline on clean_docs", _train_tokenizer),
        ("audit", "check count conservation across tables and every shard's checksum", cmd_audit),
        ("demo", "run everything on the bundled sample corpus (lake/demo) and audit it", cmd_demo),
    ]
    for name, help_text, func in commands:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p)
        if name in ("curate", "tokenize", "shard", "train-tokenizer", "run"):
            _stage_args(p)
        if name == "run":
            p.add_argument("--follow", action="store_true",
                           help="keep running: a cycle of all stages every follow.interval seconds or once "
                                "follow.min_records wait; SIGTERM finishes the cycle in progress, a second abandons it")
        if name == "train-tokenizer":
            p.add_argument("--retrain", action="store_true",
                           help="train even when the tokenizer file was trained with the same tokenize.train settings "
                                "(kept otherwise, so new data does not change the tokenizer)")
        if name == "demo":
            p.add_argument("--keep", action="store_true", help="keep the previous demo lake instead of starting fresh")
        p.set_defaults(func=func)
    # subcommands that live in their own module (version, lineage, report, monitor); imported at the top, so
    # an ImportError there fails loudly instead of silently removing commands
    versions_cli.register(sub, _common, _config)
    gc_cli.register(sub, _common, _config)
    return parser


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (line breaks and runs of spaces become one space)."""
    return " ".join(str(exc).split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )
    if not args.verbose:  # py4j logs every gateway connection at INFO
        logging.getLogger("py4j").setLevel(logging.WARNING)
    install_log_redaction()  # no level logs a secret, a key id or a request signature
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"tokenmill: config error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except TokenmillError as exc:
        log.debug("failure", exc_info=True)
        print(f"tokenmill: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tokenmill: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; the traceback goes to the debug log
        log.debug("failure", exc_info=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"tokenmill: {args.command} failed: {type(exc).__name__}: {first} (run with -v for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
