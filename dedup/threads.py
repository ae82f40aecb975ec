"""How many threads the numba kernels and pyarrow use, sized to the cores a piece of work may take.

The kernels (dedup.minhash, dedup.lsh, dedup.shingle) run on all numba threads and pyarrow on its CPU pool,
which fits one process that owns the machine (the local engine). Inside a Spark task it does not: Spark
gives each task `spark.task.cpus` cores (1 by default) and runs several tasks of a stage side by side on
one executor, so a task using every core oversubscribes the executor (and idle OpenMP threads spin while the
other tasks' threads wait for a core). Spark tells a task's Python worker its share through
OMP_NUM_THREADS (= spark.task.cpus), which pyarrow already reads; `task_cores` reads it for numba too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa


def task_cores() -> int:
    """The cores this process may use: OMP_NUM_THREADS when set (in a Spark Python worker: spark.task.cpus),
    else every core of the machine."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return os.cpu_count() or 1


def executor_cores_of(master: str, executor_cores: str | None = None) -> int:
    """Cores of one executor: `executor_cores` (spark.executor.cores) when set, else N for a `local[N]` master
    (the machine's cores for `local[*]`, the second number of `local-cluster[E,C,M]`), else 1 (YARN's default;
    a standalone executor without the setting may have more, but nothing tells the driver).

    >>> executor_cores_of("local[4]"), executor_cores_of("yarn", "3"), executor_cores_of("spark://m:7077")
    (4, 3, 1)
    """
    if executor_cores:
        return max(1, int(executor_cores))
    inner = [part.strip() for part in master[master.find("[") + 1:master.rfind("]")].split(",")]
    if master.startswith("local-cluster["):
        return max(1, int(inner[1]))
    if master.startswith("local["):  # local[N], local[*], local[N, maxFailures]
        return (os.cpu_count() or 1) if inner[0] == "*" else max(1, int(inner[0]))
    return 1


@contextmanager
def thread_budget(cores: int | None = None) -> Iterator[None]:
    """pyarrow's CPU pool and numba's parallel loops sized to `cores` (default: `task_cores()`, the share of a
    task of a parallel pass; at most the machine's cores and numba's thread pool) inside the block, and restored
    on leaving it (a Python worker runs later tasks too). numba's setting is per calling thread: the kernels
    must be called from the thread that entered."""
    import numba

    cores = max(1, min(task_cores() if cores is None else cores, os.cpu_count() or 1))
    arrow_before, numba_before = pa.cpu_count(), numba.get_num_threads()
    pa.set_cpu_count(cores)
    numba.set_num_threads(min(cores, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    try:
        yield
    finally:
        pa.set_cpu_count(arrow_before)
        numba.set_num_threads(numba_before)
