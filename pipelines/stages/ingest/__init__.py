"""The ingest stage: sources (pipelines/sources) into raw_docs and quarantine; Spark glue in `spark.py`."""
