"""Subcommand `tokenmill lineage`: a document (or a shard member) traced back to its source."""

from __future__ import annotations

import argparse
import json

from pipelines.cli.args import add_common_args, load
from pipelines.config import Config


def cmd_lineage(args: argparse.Namespace, cfg: Config) -> int:
    from pipelines.errors import LineageError
    from pipelines.ops.lineage import doc_at_member, trace_document

    doc_id = args.doc_id
    if args.shard is not None or args.member is not None:
        if args.shard is None or args.member is None:
            raise LineageError("--shard and --member go together")
        doc_id = doc_at_member(cfg, args.shard, args.member, version=args.version)
    if doc_id is None:
        raise LineageError("give a DOC_ID, or --shard and --member")
    trace = trace_document(cfg, doc_id, version=args.version)
    print(json.dumps(trace.to_dict(), indent=2, default=str) if args.json else "\n".join(trace.lines()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `lineage` to the tokenmill subcommands."""
    p = sub.add_parser("lineage", help="trace a document (or a shard member) back to its source",
                       description="Source coordinates, snapshots, decisions and shard position of a document.")
    p.add_argument("doc_id", nargs="?", help="document id")
    p.add_argument("--shard", help="shard file name or number (with --member)")
    p.add_argument("--member", help="member key, e.g. 000000000042 or 000000000042.json (with --shard)")
    p.add_argument("--version", default="current", help="version to read (default: current)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_args(p)
    p.set_defaults(func=lambda args: cmd_lineage(args, load(args)))
