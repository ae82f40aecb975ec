"""The shard stage: tokens into tar shards, the manifest and the shards table; publishing in `publish.py`,
Spark glue in `spark.py`."""
