"""Run by test_quiet_logs.py: build the session as a job does, run one small job, print the progress setting."""

import json
import sys

from pipelines.config import load_config
from pipelines.lake.spark import build_session

if __name__ == "__main__":
    cfg = load_config(None, sys.argv[1:])
    spark = build_session(cfg.spark)
    rows = spark.range(0, 1000, numPartitions=4).selectExpr("sum(id) AS s").collect()
    out = {"sum": rows[0]["s"], "progress": spark.sparkContext.getConf().get("spark.ui.showConsoleProgress")}
    print("PROBE " + json.dumps(out))
    spark.stop()
