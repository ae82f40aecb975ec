"""Curate steps persisted under the scratch URI so that a killed curate resumes: see `spark.py`."""
