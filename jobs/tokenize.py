"""spark-submit entry point of the tokenize stage: `spark-submit jobs/tokenize.py --config params.yaml [--set k=v]`."""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("tokenize"))
