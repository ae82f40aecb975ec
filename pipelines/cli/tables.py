"""Human-readable tables of stage reports and audit results (the CLI's output)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from pipelines.config import Config
from pipelines.config_paths import mask_uri
from pipelines.ops.audit import AuditResult
from pipelines.stages.report import StageReport

_console = Console(width=140)


def _fmt(n: int) -> str:
    return f"{n:,}"


def _details(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in counts.items())


def print_reports(reports: list[StageReport], cfg: Config) -> None:
    table = Table(title="tokenmill stages", show_lines=True)
    table.add_column("stage", style="bold")
    table.add_column("counts")
    table.add_column("outputs")
    table.add_column("s", justify="right")
    for r in reports:
        outputs = "\n".join(f"{k}: {v}" for k, v in r.outputs.items())
        snaps = "\n".join(f"{k}@{v}" for k, v in r.snapshots.items())
        table.add_row(r.stage, _details(r.counts), "\n".join(x for x in (outputs, snaps) if x), f"{r.seconds:.1f}")
    _console.print(table)
    catalog = mask_uri(cfg.lake.catalog_properties().get("uri", cfg.lake.catalog_name))
    _console.print(f"lake: {cfg.lake.root} (catalog {catalog},"
                   f" namespace {cfg.lake.namespace}); shards: {mask_uri(cfg.shards_uri())}")


def print_audit(result: AuditResult) -> None:
    table = Table(title="tokenmill audit")
    table.add_column("check")
    table.add_column("ok")
    table.add_column("detail")
    for c in result.checks:
        table.add_row(c.name, "[green]ok[/green]" if c.ok else "[red]FAILED[/red]", c.detail)
    _console.print(table)
