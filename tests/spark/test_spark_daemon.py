"""The CLI's own session forks its Python workers from tokenmill's preloading daemon
(pipelines/lake/daemon/spark.py): a plain RDD task (ingest's kind) and an Arrow task (every other stage's)
run in workers of the same daemon, which imported the task-side modules before forking and did not start
numba's threading layer, froze what it imported (pyspark's daemon has each reused worker run a full
`gc.collect()` after every task) and has each task's connection acknowledge at once (TCP_QUICKACK)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from pipelines.lake.daemon.spark import PRELOAD
from pipelines.lake.spark import DAEMON_MODULE

pytestmark = pytest.mark.spark


def test_workers_of_rdd_and_arrow_tasks_fork_from_one_preloading_daemon(spark: Any) -> None:
    preload = list(PRELOAD)

    def report() -> dict[str, Any]:
        # what a worker sees: the module its daemon ran as (`python -m` makes it __main__), the daemon's own
        # report, which preloaded modules this worker lacks (none: it imported nothing of them itself), the
        # objects frozen before the fork and whether its per-task function is the quick-ACK one
        import gc
        import os
        import sys

        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        return {"daemon": spec.name if spec else None, "daemon_pid": os.getppid(),
                "preloaded": dict(getattr(main, "PRELOADED", {})),
                "missing": [m for m in preload if m not in sys.modules], "frozen": gc.get_freeze_count(),
                "quick_ack": getattr(getattr(sys.modules.get("pyspark.daemon"), "worker", None), "quick_ack", False)}

    def rdd_task(_: Iterator[int]) -> Iterator[str]:
        yield json.dumps(report())

    def arrow_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for _ in batches:
            yield pa.RecordBatch.from_pydict({"report": [json.dumps(report())]})

    (rdd,) = spark.sparkContext.parallelize([0], 1).mapPartitions(rdd_task).collect()
    (row,) = spark.range(1).coalesce(1).mapInArrow(arrow_task, "report string").collect()
    reports = [json.loads(rdd), json.loads(row["report"])]
    for r in reports:
        assert r["daemon"] == DAEMON_MODULE
        assert r["missing"] == []
        assert r["preloaded"]["skipped"] == []
        assert r["preloaded"]["numba_threading_layer"] is False
        assert r["preloaded"]["modules"] > 1000
        assert r["frozen"] > 100_000  # the preloaded modules' objects: a worker's gc.collect() skips them
        assert r["quick_ack"] is True
    assert reports[0]["daemon_pid"] == reports[1]["daemon_pid"]  # one daemon (one preload) serves both kinds
