"""Run by test_spark_submit.py: build the session as a stage does and print its effective settings as JSON,
with the number of jobs it ran before any of its own (1: it started the Python workers in the background)."""

import json
import sys
import threading

from pipelines.config import load_config
from pipelines.stages import build_stage_session

if __name__ == "__main__":
    cfg = load_config(None, sys.argv[1:])
    spark = build_stage_session(cfg)
    for thread in threading.enumerate():
        if thread.name == "tokenmill-python-workers":
            thread.join()
    keys = ("spark.sql.shuffle.partitions", "spark.ui.enabled", "spark.sql.adaptive.enabled",
            "spark.sql.session.timeZone", "spark.app.name", "spark.driver.memory", "spark.python.daemon.module")
    out = {"master": spark.sparkContext.master, **{k: spark.conf.get(k, None) for k in keys},
           "jobs": len(spark.sparkContext.statusTracker().getJobIdsForGroup(None))}
    print("PROBE " + json.dumps(out))
    spark.stop()
