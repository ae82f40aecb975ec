"""The Python daemon Spark forks the CLI session's Python workers from (`spark.py` here): it imports the
task-side modules once, so a fresh process's workers do not each import them again."""
