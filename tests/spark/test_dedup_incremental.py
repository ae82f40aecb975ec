"""Incremental curate on real Spark: a new batch is deduplicated against the documents earlier runs kept,
earlier decisions never change, counts conserve, a run with nothing new commits nothing, and a run stopped
between its commits is completed by the next one."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from pipelines import lake
from pipelines.config import Config, load_config
from pipelines.ops.audit import audit
from pipelines.stages.curate.spark import run_curate
from pipelines.stages.ingest.spark import run_ingest

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny" / "input"
TABLE_NAMES = ("doc_decisions", "clean_docs", "dedup_index")

pytestmark = pytest.mark.spark


def _config(root: Path, folder: Path, *, incremental: bool) -> Config:
    return load_config(None, [
        f"lake.root={root}",
        f"sources=[{{type: local, path: '{folder}'}}]",
        "curate.filters=[{name: length, min_words: 5, max_chars: 10000}]",
        "curate.dedup.keep=[-n_chars, doc_id]",  # copies are shorter: the original must win
        f"curate.dedup.incremental={str(incremental).lower()}",
    ])


def _tables(cfg: Config) -> dict:
    catalog = lake.open_catalog(cfg.lake)
    return {name: lake.ensure_table(catalog, cfg.lake.namespace, name) for name in TABLE_NAMES}


def _rows(cfg: Config, name: str) -> list[dict]:
    return lake.read_table(_tables(cfg)[name]).to_pylist()


def _decisions(cfg: Config) -> dict[str, dict]:
    rows = _rows(cfg, "doc_decisions")
    by_id = {r["doc_id"]: r for r in rows}
    assert len(by_id) == len(rows), "one decision per document"
    return by_id


def _snapshots(cfg: Config) -> dict[str, int | None]:
    return {name: (t.current_snapshot().snapshot_id if t.current_snapshot() else None)
            for name, t in _tables(cfg).items()}


def _texts(path: Path) -> dict[str, str]:
    opener = gzip.open if path.suffix == ".gz" else open
    out = {}
    with opener(path, "rt") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record.get("text"), str):
                out[record["id"]] = record["text"]
    return out


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with word ranges [a, b) deleted (words split on single spaces, so newlines survive)."""
    words = text.split(" ")
    for a, b in sorted(spans, reverse=True):
        del words[a:b]
    return " ".join(words)


def _check_consistent(cfg: Config) -> dict[str, dict]:
    """Audit passes; clean_docs and dedup_index each hold every kept document exactly once."""
    result = audit(cfg)
    assert result.ok, [c for c in result.checks if not c.ok]
    dec = _decisions(cfg)
    kept = sorted(d for d, r in dec.items() if r["decision"] == "kept")
    assert sorted(r["doc_id"] for r in _rows(cfg, "clean_docs")) == kept
    assert sorted(r["doc_id"] for r in _rows(cfg, "dedup_index")) == kept  # every kept doc here has >= 5 words
    return dec


@pytest.fixture(scope="module")
def batches(spark, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """docs-a curated in full mode, then a new file curated incrementally, then a curate with nothing new."""
    tmp = tmp_path_factory.mktemp("incr")
    folder = tmp / "in"
    folder.mkdir()
    shutil.copy(TINY / "docs-a.jsonl", folder)
    full, incr = _config(tmp / "lake", folder, incremental=False), _config(tmp / "lake", folder, incremental=True)
    run_ingest(spark, full)
    first = run_curate(spark, full)
    before = _decisions(full)
    index_before = {r["doc_id"]: r for r in _rows(full, "dedup_index")}

    old = _texts(TINY / "docs-a.jsonl")
    tao = _texts(TINY / "docs-b.jsonl.gz")["fortune-tao-0025"]
    new_docs = [
        {"id": "new-exact-vms", "text": old["jargon-vms"]},  # byte-identical copy of an old doc
        {"id": "new-near-jonah-004", "text": _cut(old["kjv-jonah-004"], [(40, 44), (250, 254)])},
        {"id": "new-fresh-tao", "text": tao},
        {"id": "new-fresh-tao-copy", "text": tao},
        {"id": "new-fresh-tao-near", "text": _cut(tao, [(60, 61)])},
    ]
    (folder / "docs-new.jsonl").write_text("".join(json.dumps(d) + "\n" for d in new_docs))
    run_ingest(spark, incr)
    second = run_curate(spark, incr)
    after = _check_consistent(incr)
    snaps = _snapshots(incr)
    third = run_curate(spark, incr)
    return {"cfg": incr, "first": first, "second": second, "third": third, "before": before,
            "after": after, "index_before": index_before, "snapshots_after_second": snaps}


def test_full_curate_builds_the_index(batches) -> None:
    before, index = batches["before"], batches["index_before"]
    kept = {d for d, r in before.items() if r["decision"] == "kept"}
    assert set(index) == kept
    assert all(len(r["signature"]) == 4 * 128 and len(r["band_keys"]) == 16 for r in index.values())
    assert batches["first"].snapshots["dedup_index"] is not None


def test_new_batch_is_deduplicated_against_earlier_versions(batches) -> None:
    after = batches["after"]
    got = {d: (after[d]["decision"], after[d]["reason"], after[d]["kept_doc_id"]) for d in after if d.startswith("new-")}
    assert got == {
        "new-exact-vms": ("duplicate", "exact", "jargon-vms"),
        "new-near-jonah-004": ("duplicate", "near", "kjv-jonah-004"),
        "new-fresh-tao": ("kept", None, None),
        "new-fresh-tao-copy": ("duplicate", "exact", "new-fresh-tao"),
        "new-fresh-tao-near": ("duplicate", "near", "new-fresh-tao"),
    }
    assert after["new-exact-vms"]["cluster_id"] == "jargon-vms"
    assert after["new-near-jonah-004"]["cluster_id"] == "kjv-jonah-004"
    assert batches["second"].counts == {"raw_docs": 5, "kept": 1, "filtered": 0, "duplicate": 4,
                                        "duplicate_exact": 2, "duplicate_near": 2,
                                        "near_largest_component": 2, "near_components_over_max_cluster": 0,
                                        "resumed_steps": 0, "resumed_rows": 0, "dedup_one_task": 1}  # a small batch: one-task plan


def test_earlier_decisions_are_unchanged(batches) -> None:
    before, after = batches["before"], batches["after"]
    assert {d: r for d, r in after.items() if d in before} == before
    assert set(after) - set(before) == {"new-exact-vms", "new-near-jonah-004", "new-fresh-tao",
                                        "new-fresh-tao-copy", "new-fresh-tao-near"}
    index = {r["doc_id"]: r for r in _rows(batches["cfg"], "dedup_index")}
    assert set(index) == set(batches["index_before"]) | {"new-fresh-tao"}
    assert all(index[d] == r for d, r in batches["index_before"].items())


def test_a_run_with_nothing_new_commits_nothing(batches) -> None:
    third = batches["third"]
    assert third.skipped
    assert third.counts["raw_docs"] == 0
    assert _snapshots(batches["cfg"]) == batches["snapshots_after_second"]
    assert _decisions(batches["cfg"]) == batches["after"]


def test_dedup_budgets_rebuild_nothing_and_its_params_still_do(spark, batches) -> None:
    # tuning how dedup runs (its memory budgets, the components' rounds) changes no decision: no rebuild, no
    # snapshot, and the DVC pointer stays byte-identical so nothing downstream reruns; its params still rebuild
    from pipelines.stages import pointer_path, run_stage
    from pipelines.stages.curate.mode import choose_mode
    from pipelines.stages.curate.spark import _open_tables

    cfg = batches["cfg"]

    def dedup(**update: object) -> Config:
        return cfg.model_copy(update={"curate": cfg.curate.model_copy(update={
            "dedup": cfg.curate.dedup.model_copy(update=update)})})

    budgets = {"driver_max_bytes": 0, "single_task_max_bytes": 1 << 20, "driver_components_max_edges": 0,
               "max_iterations": 3, "checkpoint_every": 1}
    assert run_stage("curate", cfg, spark).skipped
    pointer = pointer_path(cfg, "curate").read_bytes()
    assert run_stage("curate", dedup(**budgets), spark).skipped
    assert pointer_path(cfg, "curate").read_bytes() == pointer
    assert _snapshots(cfg) == batches["snapshots_after_second"]
    # the default mode choice (curate.dedup.incremental unset) over the lake as it is
    assert choose_mode(dedup(incremental=None, **budgets), _open_tables(cfg)).mode == "skip"
    rebuild = choose_mode(dedup(incremental=None, threshold=0.7), _open_tables(cfg))
    assert (rebuild.mode, rebuild.reason) == ("full", "params, tokenizer or code version changed")


def test_interrupted_runs_are_completed(spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Incremental from an empty lake; the second batch's run stops after its decisions commit, the next
    one stops after completing clean_docs (before the index), the third finishes: the tables end as if
    nothing had failed, and the near copy in the second batch is a duplicate of the first batch's doc."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(TINY / "docs-a.jsonl", folder)
    cfg = _config(tmp_path / "lake", folder, incremental=True)
    run_ingest(spark, cfg)
    run_curate(spark, cfg)
    first = _check_consistent(cfg)
    shutil.copy(TINY / "docs-b.jsonl.gz", folder)
    run_ingest(spark, cfg)

    real_commit = lake.commit_files

    def crash_on(table_name: str):
        def commit(table, files, summary, *, overwrite=False):
            if table.name()[-1] == table_name:
                raise RuntimeError(f"simulated crash before the {table_name} commit")
            return real_commit(table, files, summary, overwrite=overwrite)
        return commit

    monkeypatch.setattr(lake, "commit_files", crash_on("clean_docs"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_curate(spark, cfg)
    dec = _decisions(cfg)
    assert "zz-near-kjv-jonah-003" in dec and "zz-near-kjv-jonah-003" not in {
        r["doc_id"] for r in _rows(cfg, "clean_docs")}
    assert not audit(cfg).ok  # kept docs of the second batch have no clean_docs rows yet

    monkeypatch.setattr(lake, "commit_files", crash_on("dedup_index"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_curate(spark, cfg)
    monkeypatch.setattr(lake, "commit_files", real_commit)
    report = run_curate(spark, cfg)
    assert not report.skipped and report.counts["raw_docs"] == 0  # it repaired, nothing new was left

    final = _check_consistent(cfg)
    assert {d: r for d, r in final.items() if d in first} == first
    assert (final["zz-near-kjv-jonah-003"]["decision"], final["zz-near-kjv-jonah-003"]["reason"],
            final["zz-near-kjv-jonah-003"]["kept_doc_id"]) == ("duplicate", "near", "kjv-jonah-003")
    assert (final["tiny-long-1"]["decision"], final["tiny-long-1"]["reason"]) == ("filtered", "too_long")
    assert {r["doc_id"] for r in _rows(cfg, "clean_docs")} >= {"fortune-tao-0025", "fortune-fortunes-0036"}
    snaps = _snapshots(cfg)
    assert run_curate(spark, cfg).skipped and _snapshots(cfg) == snaps


def test_a_later_better_duplicate_leaves_the_published_one_kept_in_full_rebuilds_too(spark, tmp_path: Path) -> None:
    """A shorter near copy arrives first and is kept; the longer original (the keep rule's choice) arrives in a
    later ingest and is its duplicate. A full rebuild of the same lake decides every document the same way,
    because the arrival (ingested_at) leads the keep rule; documents that arrive together follow the keep rule."""
    old = _texts(TINY / "docs-a.jsonl")
    tao = _texts(TINY / "docs-b.jsonl.gz")["fortune-tao-0025"]
    original = old["kjv-jonah-004"]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "1.jsonl").write_text("".join(json.dumps(d) + "\n" for d in (
        {"id": "early-copy", "text": _cut(original, [(40, 44), (250, 254)])}, {"id": "early-tao", "text": tao})))
    cfg = _config(tmp_path / "lake", folder, incremental=True)
    run_ingest(spark, cfg)
    run_curate(spark, cfg)
    (folder / "2.jsonl").write_text("".join(json.dumps(d) + "\n" for d in (
        {"id": "late-original", "text": original}, {"id": "late-tao-copy", "text": tao + " And so on."},
        {"id": "late-tao-longer", "text": tao + " And so on, and so forth."})))
    run_ingest(spark, cfg)
    assert run_curate(spark, cfg).counts["duplicate"] == 3
    incremental = _check_consistent(cfg)
    decided = {d: (r["decision"], r["reason"], r["kept_doc_id"]) for d, r in incremental.items()}
    assert decided == {
        "early-copy": ("kept", None, None), "early-tao": ("kept", None, None),
        "late-original": ("duplicate", "near", "early-copy"),
        "late-tao-copy": ("duplicate", "near", "early-tao"), "late-tao-longer": ("duplicate", "near", "early-tao"),
    }
    rebuilt = run_curate(spark, _config(tmp_path / "lake", folder, incremental=False))
    assert rebuilt.counts["duplicate"] == 3
    full = _check_consistent(cfg)
    assert {d: (r["decision"], r["reason"], r["kept_doc_id"]) for d, r in full.items()} == decided
