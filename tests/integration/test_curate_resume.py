"""A full curate SIGKILLed after any persisted step continues from there when re-run, with the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines import lake
from pipelines.config import Config, load_config
from pipelines.stages import run_stage
from pipelines.stages.curate.steps import steps_root

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow]

CHILD = Path(__file__).with_name("curate_child.py")
REPO = Path(__file__).resolve().parents[2]
# step killed after -> steps the re-run reads back (components done: its rounds are not read again)
STEPS = {"curated": 1, "signatures": 2, "edges": 3, "cc-000": 4, "components": 4}


def _corpus(src: Path) -> None:
    """Chains of 12 documents, each the previous with a 12-word block replaced, and unrelated documents."""
    rng = np.random.default_rng(5)
    lines = []
    for chain in range(6):
        words = [f"w{int(x)}" for x in rng.integers(0, 50_000, size=200)]
        for k in range(12):
            lines.append({"id": f"c{chain}-{k:02d}", "text": " ".join(words)})
            at = int(rng.integers(0, 188))
            words = words[:at] + [f"v{int(x)}" for x in rng.integers(0, 50_000, size=12)] + words[at + 12:]
    for k in range(40):
        lines.append({"id": f"u{k:02d}", "text": " ".join(f"x{int(x)}" for x in rng.integers(0, 50_000, size=150))})
    (src / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def _config(tmp: Path, name: str, src: Path) -> Config:
    # distributed component rounds even for this small graph, so that their persisted rounds are exercised
    return load_config(None, [f"lake.root={tmp / name}", f"sources=[{{type: local, path: '{src}'}}]",
                              "curate.dedup.driver_components_max_edges=0"])


def _decisions(cfg: Config) -> list[tuple]:
    table = lake.ensure_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "doc_decisions")
    cols = ("doc_id", "decision", "reason", "cluster_id", "kept_doc_id", "similarity", "cluster_size")
    return sorted(tuple(r.values()) for r in lake.read_table(table, cols).to_pylist())


@pytest.fixture(scope="module")
def reference(spark, tmp_path_factory) -> tuple[Path, list[tuple]]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("resume")
    src = tmp / "src"
    src.mkdir()
    _corpus(src)
    cfg = _config(tmp, "reference", src)
    run_stage("ingest", cfg, spark)
    run_stage("curate", cfg, spark)
    root = steps_root(cfg)
    assert root is not None and (not root.exists() or not any(root.iterdir()))  # a committed run cleans up
    return src, _decisions(cfg)


@pytest.mark.parametrize("step", STEPS)
def test_curate_killed_after_a_step_resumes_from_it(spark, tmp_path, reference, step) -> None:  # type: ignore[no-untyped-def]
    src, want = reference
    cfg = _config(tmp_path, "lake", src)
    run_stage("ingest", cfg, spark)
    data = cfg.model_dump(mode="json")
    data["spark"] = {"master": "local[2]", "app_name": "tokenmill-crash", "conf": {"spark.ui.showConsoleProgress": "false"}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(CHILD), str(path), f"curate.{step}"], cwd=REPO, capture_output=True,
                          timeout=600, text=True, env=env)
    assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    report = run_stage("curate", cfg, spark)
    assert report.counts["resumed_steps"] == STEPS[step]
    assert _decisions(cfg) == want
    root = steps_root(cfg)
    assert root is not None and not any(root.iterdir())
