"""Crash injection for the exactly-once tests: `TOKENMILL_FAILPOINT=<point>[:<pid>]` makes the process that
reaches `<point>` SIGKILL `<pid>` (default: itself; `-<pgid>` a whole process group), the way a lost node or an
OOM kill would.

Unset (always, outside tests) it costs one environment lookup per call site.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

ENV = "TOKENMILL_FAILPOINT"


def failpoint(name: str) -> None:
    """SIGKILL the configured process when the environment names this point."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, pid = spec.partition(":")
    if point == name:
        log.error("failpoint %s: SIGKILL", name)
        os.kill(int(pid) if pid else os.getpid(), signal.SIGKILL)
