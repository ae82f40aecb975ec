"""The Python daemon Spark forks its Python workers from, started with tokenmill's task-side modules imported.

Spark starts one daemon per executor and worker environment (`python -m <spark.python.daemon.module>
pyspark.worker`) and forks a worker from it for each concurrent Python task; a worker imports the modules of
the functions it meets. With pyspark's own daemon every worker of a fresh process pays those imports again:
pyarrow, pandas (pyarrow's first conversion of Python values imports it), numba, the filters, dedup, the stage
modules (0.3-2.5 s at a stage's first task in each worker here, 5-6 workers in an increment). This module
imports them once, in the daemon, loads the numba kernels those modules keep in numba's on-disk cache, and
then runs pyspark's daemon unchanged, so every worker it forks starts with them in memory (copy-on-write pages
of the daemon).

Fork safety. pyspark's daemon imports nothing heavy before it forks because a thread started before a fork
does not exist in the child while its locks may be held. What preloading here starts, and why it is safe:
OpenBLAS's thread pool (numpy) and jemalloc's background thread (pyarrow) both have fork handlers that shut
them down before a fork and restart them lazily in the child; pyarrow creates its CPU and I/O pools lazily and
re-creates them in a forked child. No numba kernel is called here and numba's threading layer is not
launched (`set_num_threads` or a parallel kernel's first call would launch it): kernels are only loaded from
the cache, and the first parallel call in a worker starts that worker's own pool. `preload()` reports
the threads alive after it and whether numba's threading layer runs (`PRELOADED`, which a worker sees as
`sys.modules["__main__"].PRELOADED`; tests/spark/test_spark_daemon.py checks it).

Nothing here may stop the daemon: a module that fails to import is skipped (the worker imports it itself, as
with pyspark's daemon) with one line on stderr; anything the imports print goes to stderr, because the daemon
tells Spark its port on stdout. A worker that needs a newer copy of a module (`--py-files`) would not get it
from here, so the CLI sets this daemon only for its own session (`pipelines.lake.spark.LOCAL_CONF`), never
under spark-submit; there `--conf spark.python.daemon.module=pipelines.lake.daemon.spark` opts in where the
executors run tokenmill installed (docs/cluster.md).
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

# What tasks import, heaviest first: pyspark's worker (which imports pyspark.sql and its Arrow serializers),
# pandas (pyarrow's first conversion of Python values imports it), then the modules holding tokenmill's task
# functions and the modules their globals name (curate's and tokenize's stage modules are imported whole by
# the closures they define).
PRELOAD = (
    "pyspark.worker",
    "pandas",
    "pyarrow.parquet",
    "pyarrow.compute",
    "pipelines.sources.tasks",
    "pipelines.lake.files.spark",
    "pipelines.stages.curate.spark",
    "pipelines.stages.curate.outputs",
    "pipelines.stages.tokenize.spark",
    "pipelines.stages.shard.spark",
    "dedup.spark",
    "dedup.incremental.spark",
    "dedup.onetask.spark",
    "dedup.resolve.spark",
    "dedup.steps.spark",
    "dedup.components.spark",
)
# packages whose numba kernels (module-level dispatchers with cache=True) are loaded from numba's cache
KERNEL_PACKAGES = ("pipelines.filters", "dedup", "sharding.write")
# what main()'s preload() did, for a forked worker to report
PRELOADED: dict[str, Any] = {}


def _say(message: str) -> None:
    print(f"tokenmill spark daemon: {message}", file=sys.stderr, flush=True)


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Anything written to stdout (fd 1, Python or C) goes to stderr meanwhile: Spark reads the daemon's port
    from its stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _cached_kernels(modules: list[ModuleType]) -> int:
    """Load every cached compilation of the modules' numba dispatchers into them, as a dispatcher's first
    call would (numba's cache-hit path); never compiles, never calls a kernel, and leaves parallel kernels to
    the workers (loading one launches numba's threading layer, which must not run before a fork). Returns how
    many compilations were loaded."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    loaded = 0
    seen: set[int] = set()
    for module in modules:
        for obj in list(vars(module).values()):
            if (not isinstance(obj, Dispatcher) or id(obj) in seen
                    or isinstance(getattr(obj, "_cache", None), NullCache) or obj.targetoptions.get("parallel")):
                continue
            seen.add(id(obj))
            loaded += _load_cached(obj)
    return loaded


def _load_cached(disp: Any) -> int:
    cache = disp._cache
    magic = disp.targetctx.codegen().magic_tuple()
    loaded = 0
    for key in cache._cache_file._load_index():  # {} when the source changed since the cache was written
        sig = key[0]
        if key[1] != magic or tuple(sig) in disp.overloads:
            continue
        cres = cache.load_overload(sig, disp.targetctx)
        if cres is None:
            continue
        if not cres.objectmode:
            disp.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
        disp.add_overload(cres)
        loaded += 1
    return loaded


def preload(modules: tuple[str, ...] = PRELOAD, kernel_packages: tuple[str, ...] = KERNEL_PACKAGES
            ) -> dict[str, Any]:
    """Import `modules` and load the cached numba kernels of the imported modules under `kernel_packages`;
    a failure skips that module (or the kernels) with one line on stderr. Returns what was done: seconds,
    modules in sys.modules, kernel compilations loaded, modules skipped, threads alive after, and whether
    numba's threading layer was launched (it must not be)."""
    start = time.perf_counter()
    skipped: list[str] = []
    kernels = 0
    with _stdout_to_stderr():
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # the worker imports it itself, as with pyspark's daemon
                skipped.append(name)
                _say(f"{name} not preloaded ({type(exc).__name__}: {exc})")
        try:
            kernels = _cached_kernels([m for name, m in list(sys.modules.items()) if m is not None and any(
                name == p or name.startswith(p + ".") for p in kernel_packages)])
        except Exception as exc:  # numba's cache layout is internal: a worker then loads its kernels itself
            _say(f"numba kernels not preloaded ({type(exc).__name__}: {exc})")
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    tasks = "/proc/self/task"
    return {"seconds": round(time.perf_counter() - start, 3), "modules": len(sys.modules), "kernels": kernels,
            "skipped": skipped, "threads": len(os.listdir(tasks)) if os.path.isdir(tasks) else None,
            "numba_threading_layer": bool(getattr(parallel, "_is_initialized", False))}


def main() -> None:
    """Preload, then hand over to pyspark's daemon (its `manager()`, as `python -m pyspark.daemon` runs), with
    two fixed costs of every Python task taken out:

    - What the preload left alive is frozen (`gc.freeze`) before the first fork: pyspark's daemon has every
      reused worker run a full `gc.collect()` after each task, which walks every object the process tracks;
      with the task-side modules in memory that walk took about 0.1 s of CPU per task, during which the
      worker could not take the next task. Frozen objects are never collected, so this is done once, after
      a full collection, on what the imports keep for the life of the process; the workers' own garbage is
      collected as before.
    - Each task's connection acknowledges at once (`quick_ack`): the executor writes a task's command and then
      its input in small writes, and over loopback TCP the input waited ~40 ms behind the command (Nagle's
      algorithm on the JVM's side holding it until the worker's delayed ACK).

    A trivial Python job back to back took ~0.18 s here with pyspark's daemon behaviour, ~0.05 s with both."""
    import gc

    import pyspark.daemon

    PRELOADED.update(preload())
    gc.collect()
    gc.freeze()
    pyspark.daemon.worker = quick_ack(pyspark.daemon.worker)  # looked up by the forked child for each task
    pyspark.daemon.manager()


def quick_ack(worker: Callable[..., int]) -> Callable[..., int]:
    """pyspark's per-task worker function, first switching the task's TCP connection to immediate ACKs
    (TCP_QUICKACK, Linux; elsewhere, or on a Unix domain socket, nothing changes). The kernel leaves quick-ACK
    mode on its own, so this is set again for every task, before its command and input are read."""
    option = getattr(socket, "TCP_QUICKACK", None)

    @functools.wraps(worker)
    def run(sock: socket.socket, *args: Any, **kwargs: Any) -> int:
        if option is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, 1)
            except OSError:
                pass  # only a latency hint
        return worker(sock, *args, **kwargs)

    run.quick_ack = True  # type: ignore[attr-defined]
    return run


if __name__ == "__main__":
    main()
