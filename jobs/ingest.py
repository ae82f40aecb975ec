"""spark-submit entry point of the ingest stage: `spark-submit jobs/ingest.py --config params.yaml [--set k=v]`."""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("ingest"))
