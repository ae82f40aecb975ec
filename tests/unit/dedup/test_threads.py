"""Thread budgets of the dedup kernels: a Spark task's share, the one task's executor cores."""

from __future__ import annotations

import os

import numba
import pyarrow as pa
import pytest

from dedup.threads import executor_cores_of, task_cores, thread_budget


def test_thread_budget_sizes_numba_and_pyarrow_and_restores_them() -> None:
    arrow_before, numba_before = pa.cpu_count(), numba.get_num_threads()
    with thread_budget(1):
        assert (pa.cpu_count(), numba.get_num_threads()) == (1, 1)
    assert (pa.cpu_count(), numba.get_num_threads()) == (arrow_before, numba_before)


def test_thread_budget_restores_after_an_error_and_caps_at_the_machine() -> None:
    arrow_before = pa.cpu_count()
    with pytest.raises(RuntimeError), thread_budget(10_000):
        assert pa.cpu_count() == (os.cpu_count() or 1)
        raise RuntimeError("inside")
    assert pa.cpu_count() == arrow_before


def test_task_cores_follows_what_spark_gives_a_python_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # Spark sets it to spark.task.cpus in its Python workers
    assert task_cores() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert task_cores() == (os.cpu_count() or 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert task_cores() == (os.cpu_count() or 1)


@pytest.mark.parametrize(("master", "setting", "cores"), [
    ("local[2]", None, 2), ("local[3, 4]", None, 3), ("local[*]", None, os.cpu_count() or 1),
    ("local-cluster[2, 3, 1024]", None, 3), ("spark://host:7077", "4", 4), ("local[2]", "5", 5),
    ("local", None, 1), ("yarn", None, 1), ("k8s://https://host", None, 1),
])
def test_executor_cores_of_a_master(master: str, setting: str | None, cores: int) -> None:
    assert executor_cores_of(master, setting) == cores
