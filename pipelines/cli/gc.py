"""Subcommand `tokenmill gc [--dry-run]`: remove shard objects nothing references and expire old snapshots."""

from __future__ import annotations

import argparse

from pipelines.cli.args import add_common_args, load
from pipelines.config import Config


def cmd_gc(args: argparse.Namespace, cfg: Config) -> int:
    """Print every object removed (or, with --dry-run, that would be) and the bytes freed."""
    from pipelines.ops.gc import collect_garbage

    result = collect_garbage(cfg, dry_run=args.dry_run)
    verb = "would remove" if result.dry_run else "removed"
    for name, size in result.removed:
        print(f"{verb} {cfg.shards_uri().rstrip('/')}/{name} ({size:,} bytes)")
    for note in result.notes:
        print(f"note: {note}")
    expired = ", ".join(f"{t}: {n}" for t, n in sorted(result.expired.items())) or "none"
    print(f"gc: {verb} {len(result.removed)} objects, {result.bytes_freed:,} bytes "
          f"{'would be ' if result.dry_run else ''}freed; kept {result.kept_objects} objects listed by "
          f"{len(result.kept_manifests)} manifests; expired snapshots: {expired}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `gc` to the tokenmill subcommands."""
    help_text = ("remove shard objects that neither the current manifest, the last gc.keep_snapshots published "
                 "ones nor any dataset version references, and expire old Iceberg snapshots")
    p = sub.add_parser("gc", help=help_text, description=help_text)
    add_common_args(p)
    p.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    p.set_defaults(func=lambda args: cmd_gc(args, load(args)))
