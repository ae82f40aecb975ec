"""Subcommand `tokenmill audit`: count conservation across the tables and every shard's checksum."""

from __future__ import annotations

import argparse

from pipelines.cli.args import add_common_args, load


def cmd_audit(args: argparse.Namespace) -> int:
    cfg = load(args)
    from pipelines.cli.tables import print_audit
    from pipelines.ops.audit import audit

    result = audit(cfg)
    print_audit(result)
    result.raise_if_failed()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `audit` to the tokenmill subcommands."""
    help_text = "check count conservation across tables and every shard's checksum"
    p = sub.add_parser("audit", help=help_text, description=help_text)
    add_common_args(p)
    p.set_defaults(func=cmd_audit)
