import sys
from pathlib import Path

# the parity helpers are shared with benchmarks/filters.py
sys.path.insert(0, str(Path(__file__).parent))
