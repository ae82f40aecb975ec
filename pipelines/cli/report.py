"""Subcommand `tokenmill report`: one static HTML file about a version and its change since the last."""

from __future__ import annotations

import argparse

from rich.console import Console

from pipelines.cli.args import add_common_args, load
from pipelines.config import Config

_console = Console(width=140, highlight=False)


def cmd_report(args: argparse.Namespace, cfg: Config) -> int:
    from pipelines.ops.html_report import write_report

    out = write_report(cfg, args.output, version=args.version, against=args.against)
    _console.print(f"report written to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `report` to the tokenmill subcommands."""
    p = sub.add_parser("report", help="write a static HTML report with plots",
                       description="One self-contained HTML file about a version and its change since the last.")
    p.add_argument("--output", "-o", required=True, help="HTML file to write")
    p.add_argument("--version", default="current", help="version to report on (default: current)")
    p.add_argument("--against", help="version to compare with (default: the one before)")
    add_common_args(p)
    p.set_defaults(func=lambda args: cmd_report(args, load(args)))
