"""A lake whose disk fills during ingest, on a real small file system (a tmpfs mounted for the test): the run
fails with one line `no space left on device: <path>` and exit 16, leaves no data file behind, and once
space is freed the same command ingests everything, curate follows, and the audit's counts conserve."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipelines import lake
from pipelines.config import load_config
from pipelines.storage import local_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FS_BYTES = 96 << 20  # room for curate once the filler is gone
FREE_BYTES = 1 << 20  # left free before the run: table metadata fits, the run's data files do not
N_DOCS = 8000


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 96 MiB tmpfs, mounted for the test (needs the right to mount: root, or CAP_SYS_ADMIN)."""
    folder = Path(tempfile.mkdtemp(prefix="tm-small-disk-"))
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        folder.rmdir()
        pytest.fail(f"cannot mount a small tmpfs here (the test needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield folder
    finally:
        # lazy: the test's own catalog connection (SQLite on the mount) may still hold a file open
        subprocess.run(["umount", "--lazy", str(folder)], check=False)
        folder.rmdir()


def _corpus(folder: Path) -> None:
    """N_DOCS documents of about 1.5 KB of words that do not compress much (so the data files are big)."""
    rng = np.random.default_rng(7)
    folder.mkdir()
    with (folder / "docs.jsonl").open("w") as f:
        for i in range(N_DOCS):
            words = " ".join(rng.integers(0, 1 << 40, 80).astype(str))
            f.write(f'{{"id": "d{i}", "text": "{words}"}}\n')
        f.write("{not json\n")


def _tokenmill(args: list[str], params: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args, "--config", str(params)],
                          cwd=params.parent, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "400"})  # the audit's table rows on one line each


def _data_files(root: Path) -> set[str]:
    return {str(p) for p in (root / "warehouse").rglob("*.parquet") if "/data/" in str(p)}


def _referenced(params: Path) -> set[str]:
    cfg = load_config(params, [])
    catalog = lake.open_catalog(cfg.lake)
    out: set[str] = set()
    for name in ("raw_docs", "quarantine", "doc_decisions", "clean_docs", "dedup_index"):
        table = lake.load_table(catalog, cfg.lake.namespace, name)
        if table is not None:
            for snap in table.snapshots():
                out |= {local_path(f) for f in lake.data_files(table, snap.snapshot_id)}
    return out


def test_a_full_disk_during_ingest_fails_cleanly_and_the_rerun_conserves(small_disk: Path, tmp_path: Path) -> None:
    _corpus(tmp_path / "in")
    root = small_disk / "lake"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "lake": {"root": str(root)}, "spark": {"master": "local[2]"},
        "sources": [{"type": "local", "path": str(tmp_path / "in")}],
        "curate": {"filters": [{"name": "length", "min_words": 5, "max_chars": 100000}]}}))
    stat = os.statvfs(small_disk)
    filler = small_disk / "filler"
    with filler.open("wb") as f:  # leave FREE_BYTES free
        left = stat.f_bavail * stat.f_frsize - FREE_BYTES
        while left > 0:
            left -= f.write(b"\0" * min(left, 1 << 20))

    full = _tokenmill(["ingest"], params)
    said = [line for line in full.stderr.splitlines() if line.startswith("tokenmill:")]
    assert full.returncode == 16, full.stderr[-3000:]
    assert len(said) == 1 and "no space left on device: " in said[0], said
    assert said[0].split("no space left on device: ", 1)[1].startswith(f"file://{root}/warehouse/"), said
    assert _data_files(root) == set()  # the failed run's data files are gone
    assert _data_files(root) <= _referenced(params)

    filler.unlink()
    again = _tokenmill(["ingest"], params)
    assert again.returncode == 0, again.stderr[-3000:]
    curate = _tokenmill(["curate"], params)
    assert curate.returncode == 0, curate.stderr[-3000:]
    assert _data_files(root) == _referenced(params)  # no orphan file: each one is in a snapshot
    audit = _tokenmill(["audit"], params)
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]
    assert f"{N_DOCS + 1} read = {N_DOCS} raw + 1 quarantined" in audit.stdout
