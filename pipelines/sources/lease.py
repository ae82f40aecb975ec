"""Run leases: how one ingest run knows whether another is still alive before cleaning up after it.

A run writes `<raw_docs>/metadata/ingest-runs/<run_id>.json` (host, pid, heartbeat time) before its first
commit and rewrites it every HEARTBEAT_S seconds from a daemon thread until the run ends, when the file is
removed. A run is provably dead when its lease is gone, when it ran on this host and its process no longer
exists, or when its heartbeat is older than TTL_S (another host). Only dead runs are cleaned up after:
their quarantine rows (`pipelines.sources.state`) and, here, the data files they wrote but never committed
(`sweep_dead_files`, run at the start of every ingest).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pyarrow import fs as pafs
from pyiceberg.table import Table

from pipelines import lake
from pipelines.lake import summary as keys
from pipelines.lake import table_s3
from pipelines.storage import S3Options, filesystem

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
TTL_S = 120.0  # a lease of another host whose heartbeat is older than this is dead


def lease_uri(raw_docs: Table, run_id: str) -> str:
    return f"{raw_docs.location().rstrip('/')}/metadata/ingest-runs/{run_id}.json"


def _write(uri: str, run_id: str, s3: S3Options) -> None:
    fs, path = filesystem(uri, s3)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    body = json.dumps({"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
                       "heartbeat_at": time.time()}).encode()
    with fs.open_output_stream(path) as f:
        f.write(body)


@contextmanager
def held(raw_docs: Table, run_id: str) -> Iterator[None]:
    """Hold the run's lease for the block: written now, renewed every HEARTBEAT_S, removed at the end."""
    uri = lease_uri(raw_docs, run_id)
    s3 = table_s3(raw_docs)
    _write(uri, run_id, s3)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                _write(uri, run_id, s3)
            except OSError as exc:  # the next beat tries again; TTL_S allows for several misses
                log.warning("ingest run %s: lease heartbeat failed: %s", run_id[:8], exc)

    thread = threading.Thread(target=beat, name="tokenmill-ingest-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        fs, path = filesystem(uri, s3)
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            pass


def is_alive(raw_docs: Table, run_id: str, now: float | None = None) -> bool:
    """Whether run `run_id` may still be running (see the module doc for when it is provably dead)."""
    fs, path = filesystem(lease_uri(raw_docs, run_id), table_s3(raw_docs))
    try:
        with fs.open_input_stream(path) as f:
            lease = json.loads(f.read())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # unreadable (being rewritten): not provably dead
    if lease.get("host") == socket.gethostname():
        return _pid_alive(int(lease.get("pid", -1)))
    return (now if now is not None else time.time()) - float(lease.get("heartbeat_at", 0)) < TTL_S


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RUN_FILE = re.compile(r"^\.?ingest-([0-9a-f]{8})-")


def _leased_runs(raw_docs: Table) -> list[str]:
    fs, path = filesystem(lease_uri(raw_docs, "x").rsplit("/", 1)[0], table_s3(raw_docs))
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return [i.base_name.removesuffix(".json") for i in infos if i.base_name.endswith(".json")]


def sweep_dead_files(raw_docs: Table, quarantine: Table, own_run: str) -> int:
    """Delete ingest data files (and temporary files) that no snapshot can reference: written by a run that
    never committed to either table and is provably dead (a SIGKILLed driver's tasks, a task killed while
    writing). Files of any run named by a snapshot, of this run and of live runs are kept. Returns how
    many files were deleted."""
    keep = {own_run[:8]}
    for table in (raw_docs, quarantine):
        for snap in table.snapshots():
            run = (snap.summary.additional_properties if snap.summary else {}).get(keys.RUN_ID)
            if run:
                keep.add(run[:8])
    keep |= {r[:8] for r in _leased_runs(raw_docs) if is_alive(raw_docs, r)}
    deleted = 0
    for table in (raw_docs, quarantine):
        directory = lake.data_dir(table)
        fs, path = filesystem(directory, table_s3(table))
        for info in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
            m = _RUN_FILE.match(info.base_name)
            if m and m.group(1) not in keep and info.type == pafs.FileType.File:
                fs.delete_file(info.path)
                deleted += 1
    if deleted:
        log.warning("removed %d data file(s) of ingest runs that died before committing", deleted)
    return deleted
