"""The `tokenmill` command line: one subcommand per stage, `run` for all of them, `demo`, `audit` and friends,
one module per command group (`stages`, `audit`, `demo`, `versions`, `lineage`, `report`, `monitor`, `gc`),
each adding its subcommands with `register(sub)`; `args` holds the arguments they share, and `submit` is the
body of the spark-submit entry points (`jobs/run_<stage>.py`).

Every command takes `--config FILE` (default params.yaml) and repeatable `--set dotted.key=VALUE` overrides.
Failures exit non-zero with one line on stderr: every TokenmillError exits with its own code (2 for a bad
config, 3 for a missing dependency, 4 for a failed audit, ...; the table is in docs/errors.md), anything else
with 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pipelines.cli import audit, demo, gc, lineage, monitor, report, stages, versions
from pipelines.errors import ConfigError, TokenmillError, worker_error
from pipelines.secrets import install_log_redaction

log = logging.getLogger("tokenmill")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenmill", description="Raw text to curated, deduplicated, tokenized Iceberg tables and token shards."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # one module per command group, imported at the top, so an ImportError fails loudly instead of silently
    # removing commands
    for group in (stages, audit, demo, versions, lineage, report, monitor, gc):
        group.register(sub)
    return parser


def failure_line(exc: BaseException) -> str:
    """One line for an unexpected failure: for a failed Spark task (its message carries the Python worker's
    traceback) the worker's own innermost error, e.g. `OSError: [Errno 28] No space left on device: '<path>'`,
    else the exception's class and first line."""
    text = str(exc).strip()
    if "Traceback (most recent call last)" in text:
        return worker_error(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


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
        print(f"tokenmill: {args.command} failed: {failure_line(exc)} (run with -v for details)", file=sys.stderr)
        return 1

