"""Subcommand `tokenmill monitor`: data-quality checks between versions; `print_checks` is also the table
`version create` prints."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.cli.args import add_common_args, load
from pipelines.config import Config

_console = Console(width=140, highlight=False)


def print_checks(checks: list[Any], base: str, new: str) -> None:
    if not checks:
        return
    table = Table(title=f"checks {base} -> {new}")
    for col in ("check", "value", "threshold", "result", "detail"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.name, "" if c.value is None else f"{c.value:.4g}",
                      "" if c.threshold is None else f"{c.threshold:g}",
                      "[green]ok[/green]" if c.ok else "[red]WARNING[/red]", c.detail)
    _console.print(table)


def cmd_monitor(args: argparse.Namespace, cfg: Config) -> int:
    from pipelines.ops.monitor import monitor_config, run_monitor, stage_metrics, write_prometheus

    base, checks = run_monitor(cfg, args.version, args.against, strict=False)
    if base is None:
        _console.print(f"no earlier version to compare {args.version} with")
    else:
        print_checks(checks, base.name, args.version)
    prom = args.prometheus or monitor_config(cfg).prometheus_file
    if prom:
        from pathlib import Path

        reports = stage_metrics(cfg.lake.metrics_dir or Path(cfg.lake.root) / "metrics")
        _console.print(f"prometheus metrics written to {write_prometheus(prom, reports, checks)}")
    failed = [c for c in checks if not c.ok]
    if failed and args.strict:
        from pipelines.errors import MonitorError

        raise MonitorError(f"{len(failed)} check(s) failed: " + "; ".join(c.name for c in failed))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `monitor` to the tokenmill subcommands."""
    p = sub.add_parser("monitor", help="data-quality checks between versions (--strict fails on a warning)",
                       description="Volume drop, schema change, signal drift and language-mix shift between "
                                   "versions, against thresholds in the config's `monitor` section.")
    p.add_argument("--version", default="current", help="version to check (default: current)")
    p.add_argument("--against", help="version to compare with (default: the one before)")
    p.add_argument("--strict", action="store_true", help="exit non-zero when any check fails")
    p.add_argument("--prometheus", metavar="FILE", help="also write stage metrics and checks as a Prometheus text file")
    add_common_args(p)
    p.set_defaults(func=lambda args: cmd_monitor(args, load(args)))
