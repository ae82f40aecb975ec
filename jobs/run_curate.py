"""spark-submit entry point of the curate stage: `spark-submit jobs/run_curate.py --config params.yaml [--set k=v]`.

It imports the installed tokenmill package (or the one spark-submit ships with --py-files); no name here
shadows a standard module, so this folder may stay first on sys.path."""

import sys

from pipelines.cli.submit import main

if __name__ == "__main__":
    sys.exit(main("curate"))
