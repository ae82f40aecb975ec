"""Run by test_spark_submit.py: build the session as a job does and print its effective settings as JSON."""

import json
import sys

from pipelines.config import load_config
from pipelines.lake.spark import build_session

if __name__ == "__main__":
    cfg = load_config(None, sys.argv[1:])
    spark = build_session(cfg.spark)
    keys = ("spark.sql.shuffle.partitions", "spark.ui.enabled", "spark.sql.adaptive.enabled",
            "spark.sql.session.timeZone", "spark.app.name", "spark.driver.memory", "spark.python.daemon.module")
    out = {"master": spark.sparkContext.master, **{k: spark.conf.get(k, None) for k in keys}}
    print("PROBE " + json.dumps(out))
    spark.stop()
