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

from dedup.steps.spark import subfolders
from pipelines import lake
from pipelines.config import Config, load_config
from pipelines.stages import run_stage
from pipelines.stages.curate.steps import steps_root

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow]

CHILD = Path(__file__).with_name("curate_child.py")
REPO = Path(__file__).resolve().parents[2]
# step killed after -> steps the re-run reads back (components done: its rounds are not read again); the
# signatures are computed in the filter pass, so `curated` holds them
STEPS = {"curated": 1, "edges": 2, "cc-000": 3, "components": 3}


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
    # the distributed plan and its component rounds even for this small corpus, so that their persisted
    # steps are exercised (it would otherwise be deduplicated in one task, after the `curated` step)
    return load_config(None, [f"lake.root={tmp / name}", f"sources=[{{type: local, path: '{src}'}}]",
                              "curate.dedup.driver_components_max_edges=0", "curate.dedup.single_task_max_bytes=0"])


def _decisions(cfg: Config) -> list[tuple]:
    table = lake.ensure_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "doc_decisions")
    cols = ("doc_id", "decision", "reason", "cluster_id", "kept_doc_id", "similarity", "cluster_size")
    return sorted(tuple(r.values()) for r in lake.read_table(table, cols).to_pylist())


@pytest.fixture(scope="module")
def reference(spark, tmp_path_factory) -> tuple[Path, list[tuple], dict[str, int]]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("resume")
    src = tmp / "src"
    src.mkdir()
    _corpus(src)
    cfg = _config(tmp, "reference", src)
    run_stage("ingest", cfg, spark)
    report = run_stage("curate", cfg, spark)
    assert subfolders(steps_root(cfg)) == []  # a committed run cleans up
    return src, _decisions(cfg), report.counts


def _killed_curate(cfg: Config, step: str, tmp: Path, conf: dict[str, str] | None = None) -> None:
    """Run a curate of `cfg` in a fresh process (its own Spark driver, with Spark settings `conf`) and
    SIGKILL its process group (driver, JVM, Python workers) after `step`."""
    data = cfg.model_dump(mode="json")
    data["spark"] = {"master": "local[2]", "app_name": "tokenmill-crash",
                     "conf": {"spark.ui.showConsoleProgress": "false", **(conf or {})}}
    path = tmp / "config.json"
    path.write_text(json.dumps(data))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(CHILD), str(path), f"curate.{step}"], cwd=REPO, capture_output=True,
                          timeout=600, text=True, env=env, start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}: {proc.stderr[-2000:]}"


@pytest.mark.parametrize("step", STEPS)
def test_curate_killed_after_a_step_resumes_from_it(spark, tmp_path, reference, step) -> None:  # type: ignore[no-untyped-def]
    src, want, _ = reference
    cfg = _config(tmp_path, "lake", src)
    run_stage("ingest", cfg, spark)
    _killed_curate(cfg, step, tmp_path)
    report = run_stage("curate", cfg, spark)
    assert report.counts["resumed_steps"] == STEPS[step]
    assert _decisions(cfg) == want
    assert subfolders(steps_root(cfg)) == []


def test_curate_killed_inside_its_filter_pass_reuses_the_finished_files(spark, tmp_path, reference) -> None:  # type: ignore[no-untyped-def]
    # killed as soon as the first task of the `curated` pass has written its file (of 4 tasks, 2 at a time,
    # the whole run's driver with them): the re-run reuses the files written, filters only the other rows
    # and decides as an uninterrupted run
    from pipelines.ops.audit import audit

    src, want, _ = reference
    cfg = _config(tmp_path, "lake", src)
    run_stage("ingest", cfg, spark)
    _killed_curate(cfg, "curated.file", tmp_path,
                   {"spark.sql.shuffle.partitions": "4", "spark.sql.adaptive.coalescePartitions.enabled": "false"})
    [key] = subfolders(steps_root(cfg))
    assert not (Path(steps_root(cfg).removeprefix("file://")) / key / "curated" / "_SUCCESS").exists()
    report = run_stage("curate", cfg, spark)
    assert report.counts["resumed_steps"] == 0
    assert 0 < report.counts["resumed_rows"] < report.counts["raw_docs"]
    assert _decisions(cfg) == want
    assert subfolders(steps_root(cfg)) == []
    result = audit(cfg)
    assert result.ok, [c for c in result.checks if not c.ok]


def test_one_task_curate_killed_after_its_step_resumes(spark, tmp_path, reference) -> None:  # type: ignore[no-untyped-def]
    # the one-task plan (the driver plan off): killed after its persisted `duplicates` step, the re-run reads
    # back `curated` and `duplicates` (with its component report) and decides as the distributed plan did
    src, want, counts = reference
    cfg = load_config(None, [f"lake.root={tmp_path / 'lake'}", f"sources=[{{type: local, path: '{src}'}}]",
                             "curate.dedup.driver_max_bytes=0"])
    run_stage("ingest", cfg, spark)
    _killed_curate(cfg, "duplicates", tmp_path)
    report = run_stage("curate", cfg, spark)
    assert report.counts["resumed_steps"] == 2
    assert (report.counts["dedup_one_task"], report.counts["dedup_on_driver"]) == (1, 0)
    assert report.counts["near_largest_component"] == counts["near_largest_component"] > 1
    assert _decisions(cfg) == want
    assert subfolders(steps_root(cfg)) == []


def _second_batch(src: Path) -> None:
    """New documents for an incremental run: edited copies of the first corpus's chains and new ones."""
    rng = np.random.default_rng(6)
    first = [json.loads(line) for line in (src / "docs.jsonl").read_text().splitlines()]
    lines = []
    for rec in first[:72:6]:
        words = rec["text"].split()
        at = int(rng.integers(0, len(words) - 8))
        words = words[:at] + [f"n{int(x)}" for x in rng.integers(0, 50_000, size=8)] + words[at + 8:]
        lines.append({"id": f"new-{rec['id']}", "text": " ".join(words)})
    for k in range(10):
        words = [f"y{int(x)}" for x in rng.integers(0, 50_000, size=150)]
        lines += [{"id": f"t{k:02d}", "text": " ".join(words)}, {"id": f"t{k:02d}b", "text": " ".join(words[1:])}]
    (src / "more.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_incremental_curate_killed_after_its_edges_resumes(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # an incremental run persists the same steps (keyed also by the outputs it builds on): killed after its
    # edges, the re-run reads its steps back and commits what an uninterrupted run commits
    results = []
    for name, kill in (("reference", False), ("killed", True)):
        src = tmp_path / f"src-{name}"
        src.mkdir()
        _corpus(src)
        cfg = _config(tmp_path, name, src)
        run_stage("ingest", cfg, spark)
        run_stage("curate", cfg, spark)
        _second_batch(src)
        run_stage("ingest", cfg, spark)
        inc = cfg.model_copy(update={"curate": cfg.curate.model_copy(update={
            "dedup": cfg.curate.dedup.model_copy(update={"incremental": True})})})
        if kill:
            _killed_curate(inc, "edges", tmp_path)
        report = run_stage("curate", inc, spark)
        # killed after its edges, the re-run reads back every step persisted before: curated, old-ids, edges
        assert report.counts["resumed_steps"] == (3 if kill else 0)
        assert report.counts["duplicate"] > 0
        results.append(_decisions(inc))
    assert results[0] == results[1]


def test_curate_with_an_s3_scratch_resumes(spark, s3_endpoint: str, tmp_path, reference) -> None:  # type: ignore[no-untyped-def]
    # steps are written and read by the tasks through pyarrow, so an S3 scratch persists them as well
    from pipelines.stages.curate.steps import steps_s3
    from pipelines.storage import S3Options, s3_client

    src, want, _ = reference
    s3_client(S3Options(endpoint=s3_endpoint)).create_bucket(Bucket="resume-s3")
    cfg = load_config(None, [f"lake.root={tmp_path / 'lake'}", f"sources=[{{type: local, path: '{src}'}}]",
                             "lake.scratch=s3://resume-s3/scratch", f"lake.s3.endpoint={s3_endpoint}",
                             "curate.dedup.driver_components_max_edges=0", "curate.dedup.single_task_max_bytes=0"])
    run_stage("ingest", cfg, spark)
    _killed_curate(cfg, "edges", tmp_path)
    assert steps_root(cfg).startswith("s3://resume-s3/scratch/") and len(subfolders(steps_root(cfg), steps_s3(cfg))) == 1
    report = run_stage("curate", cfg, spark)
    assert report.counts["resumed_steps"] == STEPS["edges"]
    assert _decisions(cfg) == want
    assert subfolders(steps_root(cfg), steps_s3(cfg)) == []
