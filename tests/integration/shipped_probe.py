"""Run by test_standalone_cluster.py under spark-submit: the ingest stage, then where the executors' Python
imports the package from, printed as one JSON line."""

import json
import sys

from pipelines.config import load_config
from pipelines.lake.spark import build_session
from pipelines.stages import run_stage


def _origin(_: object) -> list[str]:
    import pipelines

    return [f"{pipelines.__file__}|{sys.executable}"]


if __name__ == "__main__":
    cfg = load_config(sys.argv[1], [])
    spark = build_session(cfg.spark)
    report = run_stage("ingest", cfg, spark)
    n = 2 * spark.sparkContext.defaultParallelism
    origins = spark.sparkContext.parallelize(range(n), n).mapPartitions(_origin).collect()
    print("PROBE " + json.dumps({"raw_docs": report.counts["raw_docs"], "origins": sorted(set(origins))}))
    spark.stop()
