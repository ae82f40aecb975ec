"""What a Spark task's Python worker imports when it unpickles tokenmill's task functions: the modules that
hold them must not pull in the Iceberg catalog code or pyiceberg's pyarrow bridge, which only the driver runs
(a fresh worker pays every import once per stage it meets; docs/snapshots.md, "First increment of a process")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TASK_MODULES = ("pipelines.lake.files.spark", "pipelines.stages.curate.outputs", "pipelines.sources.tasks", "schemas")
DRIVER_ONLY = ("pyiceberg.catalog", "pyiceberg.io.pyarrow", "pyiceberg.table")


def _imported_after(modules: tuple[str, ...]) -> list[str]:
    code = (f"import sys\nfor m in {list(modules)!r}: __import__(m)\n"
            f"print(' '.join(m for m in {list(DRIVER_ONLY)!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_task_side_modules_leave_the_catalog_code_unimported() -> None:
    assert _imported_after(TASK_MODULES) == []
    # the same check sees the driver's imports (it would pass vacuously otherwise)
    assert _imported_after(("pipelines.stages.curate.spark",)) == ["pyiceberg.table"]
