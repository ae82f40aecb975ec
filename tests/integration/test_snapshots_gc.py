"""Shards as immutable snapshots on S3 (moto): a version made before two later shard runs stays readable by
TokenLoader after `tokenmill gc`, which removes exactly the objects nothing references any more."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipelines.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spark"))
from test_incremental_stages import append_clean_docs  # noqa: E402
from test_tokenize_shard import configure, make_texts  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def _objects(client, bucket: str) -> dict[str, int]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def test_s3_version_stays_readable_after_two_runs_and_gc(spark, lake_config: Config, tmp_path: Path,
                                                          s3_endpoint: str, capsys) -> None:
    import boto3

    from pipelines.cli import main
    from pipelines.ops.gc import collect_garbage
    from pipelines.ops.versions import create_version, manifest_resolver
    from pipelines.stages.shard.spark import run_shard
    from pipelines.stages.tokenize.spark import run_tokenize
    from pipelines.stages.tokenize.train import save_tokenizer, train_bpe
    from sharding import TokenLoader
    from sharding.loader.manifest import RemoteOptions

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="gc-shards")
    cfg = configure(lake_config, tmp_path, target_bytes=32 * 1024, output="s3://gc-shards/ds", endpoint=s3_endpoint)
    cfg = Config.model_validate({**cfg.model_dump(), "gc": {"keep_snapshots": 1, "min_age_seconds": 0}})
    texts = make_texts(200, seed=21)
    save_tokenizer(train_bpe(texts[:80], vocab_size=400), cfg.tokenize.tokenizer)
    append_clean_docs(cfg, texts[:120], 0)
    run_tokenize(spark, cfg)
    first = run_shard(spark, cfg)
    v1 = create_version(cfg, "v1")
    assert v1.pinned == "none" and v1.manifest_uri == first.outputs["manifest"]
    v1_manifest = json.loads(client.get_object(Bucket="gc-shards", Key=v1.manifest_uri.split("/", 3)[3])["Body"].read())
    v1_keys = {f"ds/{e[k]}" for e in v1_manifest["shards"] for k in ("path", "index")}

    append_clean_docs(cfg, texts[120:], 120)  # run 2: incremental, extends v1's manifest
    run_tokenize(spark, cfg)
    second = run_shard(spark, cfg)
    assert second.counts["samples"] == 200 and second.counts["samples_written"] == 80
    bigger = Config.model_validate({**cfg.model_dump(), "shard": {**cfg.shard.model_dump(), "target_bytes": 1 << 20}})
    third = run_shard(spark, bigger)  # run 3: other settings, every shard anew
    assert third.counts["samples_written"] == 200
    before = _objects(client, "gc-shards")
    assert v1_keys <= set(before)

    dry = collect_garbage(bigger, dry_run=True)
    assert _objects(client, "gc-shards") == before
    second_manifest = json.loads(client.get_object(Bucket="gc-shards", Key=second.outputs["manifest"].split("/", 3)[3])
                                 ["Body"].read())
    run2_only = {f"ds/{e[k]}" for e in second_manifest["shards"] for k in ("path", "index")} - v1_keys
    expected = run2_only | {second.outputs["manifest"].split("/", 3)[3]}
    assert {f"ds/{name}" for name, _ in dry.removed} == expected and dry.bytes_freed == sum(before[k] for k in expected)

    assert main(["gc", "--set", f"lake.root={cfg.lake.root}", "--set", "shard.output=s3://gc-shards/ds",
                 "--set", f"shard.endpoint={s3_endpoint}", "--set", "shard.target_bytes=1048576",
                 "--set", "gc.keep_snapshots=1", "--set", "gc.min_age_seconds=0"]) == 0
    printed = capsys.readouterr().out
    assert f"removed {len(expected)} objects, {dry.bytes_freed:,} bytes freed" in printed
    after = _objects(client, "gc-shards")
    assert set(after) == set(before) - expected and v1_keys <= set(after)
    assert collect_garbage(bigger).removed == []  # nothing left to collect

    loader = TokenLoader("v1", resolver=manifest_resolver(bigger), seq_len=64, batch_size=4, rank=0, world_size=1,
                         remote=RemoteOptions(endpoint=s3_endpoint, cache_dir=str(tmp_path / "cache")))
    batches = list(loader)
    stream = v1_manifest["n_tokens"] + v1_manifest["n_samples"]
    assert len(batches) == len(loader) == stream // (64 * 4) > 0
    assert all(b["input_ids"].shape == (4, 64) for b in batches)
