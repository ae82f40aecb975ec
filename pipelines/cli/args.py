"""Arguments every `tokenmill` command takes (`--config`, `--set`, `-v`; `--from-version` for the stages) and
the config they name."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipelines.config import Config, load_config


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default="params.yaml", help="YAML config file (default: params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, VALUE parsed as YAML (repeatable), e.g. shard.target_bytes=1048576")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def add_stage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-version", metavar="NAME", default=None,
                   help="read the input tables at this dataset version (same as --set lake.read_version=NAME)")


def load(args: argparse.Namespace, extra: Sequence[str] = ()) -> Config:
    version = getattr(args, "from_version", None)
    flags = [*([f"lake.read_version={version}"] if version else []),
             *(["tokenize.train.retrain=true"] if getattr(args, "retrain", False) else [])]
    return load_config(args.config, [*extra, *args.overrides, *flags])
