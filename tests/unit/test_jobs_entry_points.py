"""The spark-submit entry points in jobs/: one per stage, none named like a standard module (spark-submit puts
their folder first on sys.path), none editing sys.path, each importing only the installed package."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from pipelines.stages import EXTRA, STAGES

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def test_one_job_per_stage_and_none_shadows_a_standard_module() -> None:
    names = sorted(p.stem for p in JOBS.glob("*.py"))
    assert names == sorted(f"run_{s.replace('-', '_')}" for s in (*STAGES, *EXTRA))
    assert [n for n in names if n in sys.stdlib_module_names] == []


def test_jobs_import_the_package_and_leave_sys_path_alone() -> None:
    for path in sorted(JOBS.glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert imported == {"sys", "pipelines.cli.submit"}, path.name
        edits = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "path"
                 and isinstance(n.value, ast.Name) and n.value.id == "sys"]
        assert edits == [], path.name
