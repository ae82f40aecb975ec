"""tokenize and shard as incremental stages: appended clean docs are tokenized and sharded alone, the new
manifest extends the previous one, nothing new commits nothing, other params or a rewritten input rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_tokenize_shard import clean_docs_rows, configure, make_texts, write_clean_docs

from pipelines import lake
from pipelines.config import Config
from schemas.clean_docs import TABLE as CLEAN_DOCS

pytestmark = pytest.mark.spark


def append_clean_docs(cfg: Config, texts: list[str], first: int) -> None:
    """One append commit of clean_docs rows doc-<first>... (as an incremental curate makes)."""
    table = lake.ensure_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, CLEAN_DOCS)
    rows = clean_docs_rows(texts, first, ["/data/x.jsonl"] * len(texts))
    path = lake.write_data_file(lake.data_dir(table), rows, prefix="t")
    lake.commit_files(table, [path] if path else [], lake.snapshot_summary(cfg, "curate", "test"))


def samples(manifest_uri: str) -> list[tuple[str, str, bytes]]:
    """(key, doc_id, tokens) of every sample of the manifest, in manifest order (read by webdataset)."""
    import webdataset as wds

    path = Path(manifest_uri)
    manifest = json.loads(path.read_text())
    urls = [str(path.parent / s["path"]) for s in manifest["shards"]]
    return [(s["__key__"], json.loads(s["json"])["doc_id"], s["tokens"])
            for s in wds.WebDataset(urls, shardshuffle=False)]


def snapshot(cfg: Config, name: str) -> int | None:
    snap = lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, name).current_snapshot()
    return snap.snapshot_id if snap else None


def test_appended_docs_are_tokenized_and_sharded_alone(spark, lake_config: Config, tmp_path: Path) -> None:
    from pipelines.stages.shard.spark import run_shard
    from pipelines.stages.tokenize.spark import run_tokenize
    from pipelines.stages.tokenize.train import save_tokenizer, train_bpe

    cfg = configure(lake_config, tmp_path, target_bytes=64 * 1024)
    texts = make_texts(300, seed=11)
    save_tokenizer(train_bpe(texts[:100], vocab_size=400), cfg.tokenize.tokenizer)
    append_clean_docs(cfg, texts[:240], 0)
    assert run_tokenize(spark, cfg).counts["docs"] == 240
    first = run_shard(spark, cfg)
    m1 = json.loads(Path(first.outputs["manifest"]).read_text())
    out = Path(cfg.shards_uri())
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}

    append_clean_docs(cfg, texts[240:], 240)
    tok = run_tokenize(spark, cfg)
    assert tok.counts["docs"] == 60 and not tok.skipped
    tokens = lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "tokens")
    assert lake.last_summary(tokens)["tokenmill.mode"] == "incremental"
    assert lake.read_table(tokens, ("doc_id",)).num_rows == 300
    second = run_shard(spark, cfg)
    assert (second.counts["samples_written"], second.counts["samples"]) == (60, 300)
    m2 = json.loads(Path(second.outputs["manifest"]).read_text())
    assert m2["shards"][: m1["n_shards"]] == m1["shards"] and m2["n_shards"] == m1["n_shards"] + \
        second.counts["shards_written"]
    assert all(p.read_bytes() == blob for p, blob in before.items())  # nothing earlier rewritten
    got = samples(second.outputs["manifest"])
    assert [k for k, _, _ in got] == [f"{i:012d}" for i in range(300)]  # keys continue the previous manifest
    assert sorted(d for _, d, _ in got) == [f"doc-{i:05d}" for i in range(300)]  # every doc exactly once
    rows = {r["doc_id"]: r["tokens"] for r in lake.read_table(tokens, ("doc_id", "tokens")).to_pylist()}
    assert all(rows[d] == t for _, d, t in got)

    snaps = {name: snapshot(cfg, name) for name in ("tokens", "shards")}
    again_tok, again_shard = run_tokenize(spark, cfg), run_shard(spark, cfg)
    assert again_tok.skipped and again_shard.skipped and again_tok.counts["docs"] == 0
    assert {name: snapshot(cfg, name) for name in ("tokens", "shards")} == snaps
    assert again_shard.outputs["manifest"] == second.outputs["manifest"]

    cfg = Config.model_validate({**cfg.model_dump(), "tokenize": {**cfg.tokenize.model_dump(), "eos": True}})
    full = run_tokenize(spark, cfg)  # other tokenize params: every document again
    assert full.counts["docs"] == 300
    summary = lake.last_summary(lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "tokens"))
    assert (summary["tokenmill.mode"], summary["tokenmill.rebuild_reason"]) == (
        "full", "params, tokenizer or code version changed")
    rebuilt = run_shard(spark, cfg)
    assert rebuilt.counts["samples_written"] == rebuilt.counts["samples"] == 300
    shards_summary = lake.last_summary(lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "shards"))
    assert shards_summary["tokenmill.rebuild_reason"].startswith("input was rewritten")
    m3 = json.loads(Path(rebuilt.outputs["manifest"]).read_text())
    assert not {s["path"] for s in m3["shards"]} & {s["path"] for s in m2["shards"]}


def test_a_rewritten_input_rebuilds_in_full(spark, lake_config: Config, tmp_path: Path) -> None:
    from pipelines.stages.shard.spark import run_shard
    from pipelines.stages.tokenize.spark import run_tokenize
    from pipelines.stages.tokenize.train import save_tokenizer, train_bpe

    cfg = configure(lake_config, tmp_path)
    texts = make_texts(80, seed=5)
    save_tokenizer(train_bpe(texts, vocab_size=300), cfg.tokenize.tokenizer)
    write_clean_docs(cfg, texts)
    run_tokenize(spark, cfg)
    run_shard(spark, cfg)
    write_clean_docs(cfg, texts[:50])  # a full curate replaced clean_docs: 30 docs are gone
    report = run_tokenize(spark, cfg)
    tokens = lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "tokens")
    summary = lake.last_summary(tokens)
    assert report.counts["docs"] == 50 and summary["tokenmill.mode"] == "full"
    assert summary["tokenmill.rebuild_reason"].startswith("input was rewritten")
    shard = run_shard(spark, cfg)
    assert shard.counts["samples"] == shard.counts["samples_written"] == 50
    ids = np.array(sorted(d for _, d, _ in samples(shard.outputs["manifest"])))
    assert ids.tolist() == [f"doc-{i:05d}" for i in range(50)]


def test_a_second_tokenmill_run_with_nothing_new_commits_nothing(spark, tmp_path: Path) -> None:
    import yaml

    from pipelines.cli import main
    from schemas import TABLES

    tiny = Path(__file__).resolve().parents[1] / "data" / "tiny" / "input"
    root = tmp_path / "lake"
    config = tmp_path / "params.yaml"
    config.write_text(yaml.safe_dump({
        "lake": {"root": str(root), "metrics_dir": str(root / "metrics")}, "spark": {"master": "local[2]"},
        "sources": [{"type": "local", "path": str(tiny)}],
        "curate": {"filters": [{"name": "length", "min_words": 5, "max_chars": 10000}]},
        "tokenize": {"tokenizer": str(root / "tokenizer.json"), "train": {"vocab_size": 600}},
        "shard": {"target_bytes": 16384},
    }))
    assert main(["run", "--config", str(config)]) == 0
    cfg = Config.model_validate(yaml.safe_load(config.read_text()))
    catalog = lake.open_catalog(cfg.lake)

    def state() -> tuple[dict[str, list[int]], dict[str, str]]:
        snaps = {name: sorted(s.snapshot_id for s in lake.load_table(catalog, cfg.lake.namespace, name).snapshots())
                 for name in TABLES if lake.load_table(catalog, cfg.lake.namespace, name) is not None}
        pointers = {p.name: p.read_text() for p in (root / "pointers").glob("*.json")}
        return snaps, pointers

    before = state()
    assert before[0]["shards"] and set(before[1]) >= {"ingest.json", "curate.json", "tokenize.json", "shard.json"}
    assert main(["run", "--config", str(config)]) == 0
    assert state() == before  # no snapshot committed, every DVC pointer byte-identical
    metrics = {s: json.loads((root / "metrics" / f"{s}.json").read_text()) for s in ("curate", "tokenize", "shard")}
    assert metrics["tokenize"]["counts"]["docs"] == 0 and metrics["shard"]["counts"]["samples_written"] == 0
