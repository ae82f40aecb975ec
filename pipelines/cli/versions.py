"""Subcommand `tokenmill version create|list|show|diff|delete`: dataset versions (Iceberg tags on every table
plus a reference to the published shard manifest)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from pipelines.cli.args import add_common_args, load
from pipelines.cli.monitor import print_checks
from pipelines.config import Config

log = logging.getLogger(__name__)

_console = Console(width=140, highlight=False)


def _n(v: int) -> str:
    return f"{v:,}"


def cmd_version_create(args: argparse.Namespace, cfg: Config) -> int:
    from pipelines.errors import VersionError
    from pipelines.ops.monitor import run_monitor
    from pipelines.ops.versions import check_name, create_version, record_path

    check_name(args.name)
    if record_path(cfg, args.name).exists():  # a taken name is the whole answer: no checks table before it
        raise VersionError(f"version {args.name!r} already exists ({record_path(cfg, args.name)})")
    # checks run before anything is tagged, so --strict leaves no half-made version behind; their table is
    # printed once the version exists, so a failure prints its one-line error alone
    base, checks = run_monitor(cfg, "current", strict=args.strict)
    info = create_version(cfg, args.name, message=args.message, pin=args.pin)
    if base is not None:
        print_checks(checks, base.name, args.name)
    snaps = ", ".join(f"{t}@{s}" for t, s in info.snapshots.items() if s is not None)
    _console.print(f"version [bold]{info.name}[/bold]: {snaps}")
    _console.print(f"manifest: {info.manifest_uri or 'none (no shards yet)'} (pinned: {info.pinned})")
    return 0


def cmd_version_list(args: argparse.Namespace, cfg: Config) -> int:
    from pipelines.ops.versions import list_versions

    versions = list_versions(cfg)
    if args.json:
        print(json.dumps([json.loads(v.to_json()) for v in versions], indent=2))
        return 0
    table = Table(title="tokenmill versions")
    for col in ("name", "created", "raw docs", "kept", "tokens", "shards", "params", "message"):
        table.add_column(col, justify="right" if col in ("raw docs", "kept", "tokens", "shards") else "left")
    for v in versions:
        table.add_row(v.name, v.created_at[:19].replace("T", " "), _n(v.table_rows.get("raw_docs", 0)),
                      _n(v.table_rows.get("clean_docs", 0)), _n(v.shards.get("n_tokens", 0)),
                      _n(v.shards.get("n_shards", 0)), (v.params_hash or "")[:12], v.message)
    _console.print(table if versions else "no versions yet: `tokenmill version create NAME`")
    return 0


def cmd_version_show(args: argparse.Namespace, cfg: Config) -> int:
    from pipelines.ops.versions import resolve_version

    info = resolve_version(cfg, args.name)
    if args.json:
        print(info.to_json())
        return 0
    _console.print(f"[bold]{info.name}[/bold] created {info.created_at}" + (f": {info.message}" if info.message else ""))
    _console.print(f"params hash {info.params_hash}  git {info.git_sha or 'unknown'}")
    _console.print(f"manifest {info.manifest_uri} (pinned: {info.pinned}, sha256 {info.manifest_sha256})")
    table = Table()
    table.add_column("table")
    table.add_column("snapshot", justify="right")
    table.add_column("rows", justify="right")
    for t, s in info.snapshots.items():
        table.add_row(t, str(s) if s is not None else "-", _n(info.table_rows.get(t, 0)))
    _console.print(table)
    if info.shards:
        _console.print(", ".join(f"{k}={_n(v)}" for k, v in info.shards.items()))
    return 0


def cmd_version_diff(args: argparse.Namespace, cfg: Config) -> int:
    from pipelines.ops.versions import resolve_version
    from pipelines.ops.versions_diff import diff_versions

    d = diff_versions(cfg, resolve_version(cfg, args.a), resolve_version(cfg, args.b))
    if args.json:
        print(json.dumps({"a": d.a, "b": d.b, "changes": d.changes, "tables": d.tables, "shards": d.shards,
                          "params_changed": d.params_changed}, indent=2))
        return 0
    _console.print(f"{d.a} -> {d.b}: +{_n(d.total('added'))} documents (+{_n(d.total('added', 'tokens'))} tokens), "
                   f"-{_n(d.total('removed'))} documents (-{_n(d.total('removed', 'tokens'))} tokens)"
                   + ("; config changed (see `dvc params diff`)" if d.params_changed else ""))
    if d.changes:
        table = Table(title="documents added and removed")
        for col in ("change", "source", "reason", "documents", "tokens"):
            table.add_column(col, justify="right" if col in ("documents", "tokens") else "left")
        for r in d.changes:
            table.add_row(r["change"], r["source"], r["reason"], _n(r["docs"]), _n(r["tokens"]))
        _console.print(table)
    totals = Table(title="totals")
    for col in ("", d.a, d.b, "change"):
        totals.add_column(col, justify="left" if not col else "right")
    for name, (a, b) in [*d.tables.items(), *d.shards.items()]:
        totals.add_row(name, _n(a), _n(b), f"{b - a:+,}")
    _console.print(totals)
    return 0


def cmd_version_delete(args: argparse.Namespace, cfg: Config) -> int:
    from pipelines.ops.versions import delete_version

    delete_version(cfg, args.name)
    _console.print(f"deleted version {args.name} (its tags, pinned shards and record)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `version` and its actions to the tokenmill subcommands."""

    def bind(fn: Callable[[argparse.Namespace, Config], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: fn(args, load(args))

    version = sub.add_parser("version", help="create, list, show, diff and delete dataset versions",
                             description="Dataset versions: Iceberg tags on every table plus a reference to the "
                                         "published shard manifest.")
    actions = version.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("create", help="tag the current snapshot of every table and reference the current manifest")
    p.add_argument("name", help="version name: letters, digits, '.', '_', '-'")
    p.add_argument("--message", "-m", default="", help="what this version is")
    p.add_argument("--pin", choices=("link", "copy", "none"), default="none",
                   help="none (default): reference the immutable manifest, which gc keeps; link/copy: also a "
                        "private copy of a local manifest and its shards (hard links or copies)")
    p.add_argument("--strict", action="store_true", help="refuse to create it when a monitoring check fails")
    p.set_defaults(func=bind(cmd_version_create))
    p_list = actions.add_parser("list", help="all versions, oldest first")
    p_list.set_defaults(func=bind(cmd_version_list))
    p_show = actions.add_parser("show", help="a version's snapshots, manifest and counts")
    p_show.add_argument("name", help="version name, or 'current'")
    p_show.set_defaults(func=bind(cmd_version_show))
    p_diff = actions.add_parser("diff", help="documents added and removed from A to B, by source and reason")
    p_diff.add_argument("a", help="earlier version")
    p_diff.add_argument("b", nargs="?", default="current", help="later version (default: current)")
    p_diff.set_defaults(func=bind(cmd_version_diff))
    p_del = actions.add_parser("delete", help="remove a version's tags, pinned shards and record")
    p_del.add_argument("name")
    p_del.set_defaults(func=bind(cmd_version_delete))
    for q in (p_list, p_show, p_diff):
        q.add_argument("--json", action="store_true", help="machine-readable output")
    for q in (p, p_list, p_show, p_diff, p_del):
        add_common_args(q)
