"""spark-submit entry point of train-tokenizer: `spark-submit jobs/train_tokenizer.py --config params.yaml`."""

import os
import sys

# this folder must not stay first on sys.path: jobs/tokenize.py would shadow the standard tokenize module
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from jobs._entry import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("train-tokenizer"))
