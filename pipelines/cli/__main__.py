"""`python -m pipelines.cli` runs the `tokenmill` command."""

import sys

from pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main())
