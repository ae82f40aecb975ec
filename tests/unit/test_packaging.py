"""Every package of the distribution is a regular package listed in pyproject.toml, and imports from a zip.

`spark-submit --py-files code.zip` (or a wheel) puts a zip archive on the executors' path; zipimport does not
import a folder without `__init__.py`, so a module in such a folder runs on the driver and fails on executors.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
TOP = ("pipelines", "dedup", "sharding", "schemas")


def _code_folders() -> list[str]:
    found = {p.parent.relative_to(ROOT).as_posix().replace("/", ".")
             for top in TOP for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts}
    return sorted(found)


def test_every_folder_with_code_is_a_listed_regular_package() -> None:
    folders = _code_folders()
    assert "pipelines.lake.files" in folders and "dedup.steps" in folders
    assert [f for f in folders if not (ROOT / f.replace(".", "/") / "__init__.py").exists()] == []
    assert [f for f in folders if f not in PACKAGES] == []


def test_every_package_imports_from_a_zip_as_py_files_ships_it(tmp_path: Path) -> None:
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for top in TOP:
            for f in sorted((ROOT / top).rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts:
                    zf.write(f, f.relative_to(ROOT).as_posix())
    modules = sorted({p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
                      for top in TOP for p in (ROOT / top).rglob("spark.py")} | set(_code_folders()))
    script = ("import importlib, sys\n"
              f"sys.path.insert(0, {str(archive)!r})\n"
              f"for name in {modules!r}:\n"
              "    mod = importlib.import_module(name)\n"
              f"    assert mod.__file__.startswith({str(archive)!r}), (name, mod.__file__)\n"
              "print(len(sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
