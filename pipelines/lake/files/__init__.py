"""Task-side Parquet I/O for the lake tables (pyarrow inside Spark tasks): see `spark.py`."""
