"""The curate stage: raw_docs into clean_docs and doc_decisions (normalize, filters, dedup); Spark glue in
`spark.py`, the run mode (skip, incremental, full) in `mode.py`, persisted steps in `steps.py`."""
