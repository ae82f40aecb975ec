"""spark-submit entry point of the curate stage: `spark-submit jobs/curate.py --config params.yaml [--set k=v]`."""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("curate"))
