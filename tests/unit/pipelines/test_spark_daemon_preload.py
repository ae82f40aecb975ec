"""`pipelines.lake.daemon.spark.preload()` in a fresh interpreter, as the daemon runs it before forking:
cached numba kernels are loaded without compiling or calling them and without starting numba's threading
layer (a parallel kernel is left to the workers), a module that fails to import is skipped, nothing
reaches stdout, where the daemon tells Spark its port, and a process forked after it runs BLAS, pyarrow and
both kinds of kernel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

FILL_CACHE = """
import numpy as np
from pipelines.filters.stats import duplicates
from dedup.lsh import band_keys
duplicates(np.array([1, 2, 1], dtype=np.int64), np.array([3, 4, 5], dtype=np.int64))
band_keys(np.zeros((2, 4), dtype=np.uint32), 2, 2)
"""

PRELOAD = """
import json, sys
from pipelines.lake.daemon.spark import preload
report = preload(("pipelines.filters.stats", "dedup.lsh", "noisy_module", "no_such_module_here"),
                 ("pipelines.filters.stats", "dedup.lsh"))
from pipelines.filters.stats import duplicates
from dedup.lsh import _band_keys
report["serial_overloads"] = len(duplicates.overloads)
report["parallel_overloads"] = len(_band_keys.overloads)
# a worker forked from here: BLAS (numpy's pool), pyarrow's pools and allocator, the loaded kernel, and a
# parallel kernel starting numba's threading layer in the child; a hang there exits 3 after 60 s
import os, signal
import numpy as np
import pyarrow as pa, pyarrow.compute as pc
a = np.ones((300, 300))
a @ a
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGALRM, lambda *_: os._exit(3))
    signal.alarm(60)
    from dedup.lsh import band_keys
    a @ a
    pc.sum(pa.array(np.arange(1_000_000))).as_py()
    duplicates(np.array([1, 2, 1], dtype=np.int64), np.array([3, 4, 5], dtype=np.int64))
    band_keys(np.zeros((1000, 8), dtype=np.uint32), 2, 4)
    os._exit(0)
report["forked_worker_exit"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print("REPORT " + json.dumps(report))
"""


def test_preload_loads_cached_serial_kernels_skips_bad_modules_and_keeps_stdout_clean(tmp_path: Path) -> None:
    env_path = f"{REPO}:{tmp_path}"
    (tmp_path / "noisy_module.py").write_text("print('noise at import')\n")
    subprocess.run([sys.executable, "-c", FILL_CACHE], cwd=REPO, check=True, env={"PYTHONPATH": env_path,
                                                                                  "PATH": "/usr/bin:/bin"})
    out = subprocess.run([sys.executable, "-c", PRELOAD], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})
    (line,) = out.stdout.splitlines()  # the report only: the module's print went to stderr
    report = json.loads(line.removeprefix("REPORT "))
    assert "noise at import" in out.stderr
    assert report["skipped"] == ["no_such_module_here"]
    assert "no_such_module_here not preloaded" in out.stderr
    assert report["serial_overloads"] >= 1 and report["kernels"] >= report["serial_overloads"]
    assert report["parallel_overloads"] == 0
    assert report["numba_threading_layer"] is False
    assert report["forked_worker_exit"] == 0


def test_each_task_connection_is_switched_to_immediate_acks_before_the_task_runs() -> None:
    """On Linux the task's TCP socket has TCP_QUICKACK on when the task starts; where the option does not
    exist (and on a Unix domain socket) the socket is left as it is and the task still runs with it."""
    import socket

    from pipelines.lake.daemon.spark import quick_ack

    option = getattr(socket, "TCP_QUICKACK", None)
    seen: list[tuple[int | None, str]] = []

    def task(sock: socket.socket, authenticated: bool) -> int:  # pyspark.daemon.worker's signature
        tcp = sock.family == socket.AF_INET and option is not None
        seen.append((sock.getsockopt(socket.IPPROTO_TCP, option) if tcp else None, str(authenticated)))
        return 0

    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as executor_side:
        conn, _ = server.accept()
        with conn:
            if option is not None:
                conn.setsockopt(socket.IPPROTO_TCP, option, 0)
            assert quick_ack(task)(conn, True) == 0
            assert executor_side.fileno() >= 0
    assert seen == [(1 if option is not None else None, "True")]
    left, right = socket.socketpair()  # a Unix domain socket: nothing to switch, the task still runs
    with left, right:
        assert quick_ack(task)(left, False) == 0
    assert seen[-1] == (None, "False")
