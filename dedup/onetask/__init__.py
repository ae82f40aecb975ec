"""The one-task plan of the Spark dedup: the local engine inside one Spark task (dedup/onetask/spark.py)."""
