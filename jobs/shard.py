"""spark-submit entry point of the shard stage: `spark-submit jobs/shard.py --config params.yaml [--set k=v]`."""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("shard"))
