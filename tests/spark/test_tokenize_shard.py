"""tokenize and shard stages on a local[2] Spark session: clean_docs -> tokens -> shards + manifest + table."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipelines import lake
from pipelines.config import Config
from pipelines.stages.tokenize.config import GPT2_PATTERN
from pipelines.stages.tokenize.train import tiktoken_ranks_from_bpe
from schemas.clean_docs import TABLE as CLEAN_DOCS
from schemas.tokens import TABLE as TOKENS

pytestmark = pytest.mark.spark

# Spark's Python workers keep the environment they started with, which happens before any test runs: the
# S3 tests' dummy credentials (moto accepts any) must be in place at collection time.
for _key, _value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}.items():
    os.environ.setdefault(_key, _value)

WORDS = ("the river ran past old stone walls while merchants argued about prices of grain salt and wool; "
         "children laughed, dogs barked, and the bells rang twelve times before noon ended. Über café naïve 東京").split()


def make_texts(n: int, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 400, size=n)
    return [" ".join(rng.choice(WORDS, size=int(k))) for k in lengths]


def clean_docs_rows(texts: list[str], first: int, source_uris: list[str]) -> pa.Table:
    """clean_docs rows doc-<first>... holding `texts` (other signal columns null)."""
    schema = CLEAN_DOCS.arrow_schema
    n = len(texts)
    cols = {name: pa.nulls(n, schema.field(name).type) for name in schema.names}
    cols["doc_id"] = pa.array([f"doc-{first + i:05d}" for i in range(n)], schema.field("doc_id").type)
    cols["text"] = pa.array(texts, schema.field("text").type)
    cols["source_type"] = pa.array(["local"] * n, schema.field("source_type").type)
    cols["source_uri"] = pa.array(source_uris, schema.field("source_uri").type)
    return pa.table(cols, schema=schema)


def write_clean_docs(cfg: Config, texts: list[str], files: int = 3) -> None:
    catalog = lake.open_catalog(cfg.lake)
    table = lake.ensure_table(catalog, cfg.lake.namespace, CLEAN_DOCS)
    n = len(texts)
    full = clean_docs_rows(texts, 0, [f"/data/part-{i % 4}.jsonl" for i in range(n)])
    bounds = np.linspace(0, n, files + 1).astype(int)
    paths = [lake.write_data_file(lake.data_dir(table), full.slice(a, b - a), prefix="t")
             for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    lake.commit_files(table, [p for p in paths if p], lake.snapshot_summary(cfg, "curate", "test"), overwrite=True)


def configure(cfg: Config, tmp_path: Path, **shard: object) -> Config:
    data = cfg.model_dump()
    data["tokenize"]["tokenizer"] = str(tmp_path / "tok" / "tokenizer.json")
    data["tokenize"]["train"] = {"vocab_size": 600, "min_frequency": 2, "max_docs": None, "seed": 0}
    data["shard"].update({"target_bytes": 256 * 1024, **shard})
    return Config.model_validate(data)


def tokens_rows(cfg: Config) -> dict[str, tuple[bytes, int, str]]:
    table = lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "tokens")
    t = lake.read_table(table).to_pylist()
    return {r["doc_id"]: (r["tokens"], r["n_tokens"], r["source"]) for r in t}


def corpus_texts() -> list[str]:
    rng = np.random.default_rng(3)
    # the last document is larger than a 256 KiB shard
    return make_texts(400) + [" ".join(rng.choice(WORDS, size=150_000))]


@pytest.fixture(scope="module")
def corpus_cfg(spark, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """One trained tokenizer and tokens table shared by the module's tests (they leave it as they found it)."""
    from pipelines.config import load_config
    from pipelines.stages.tokenize.spark import run_tokenize, train_tokenizer

    tmp_path = tmp_path_factory.mktemp("corpus")
    cfg = configure(load_config(None, [f"lake.root={tmp_path / 'lake'}"]), tmp_path)
    texts = corpus_texts()
    write_clean_docs(cfg, texts)
    report = train_tokenizer(spark, cfg)
    assert report.counts["docs"] == 401
    report = run_tokenize(spark, cfg)
    assert report.counts["docs"] == 401
    return cfg


def test_tokenize_writes_tokens_with_tokenizer_identity(spark, corpus_cfg: Config) -> None:
    from tokenizers import Tokenizer

    tok_path = Path(corpus_cfg.tokenize.tokenizer)
    tok = Tokenizer.from_file(str(tok_path))
    assert tok.token_to_id("<|endoftext|>") == 0
    table = lake.load_table(lake.open_catalog(corpus_cfg.lake), corpus_cfg.lake.namespace, "tokens")
    assert table.properties["token_dtype"] == "uint16"
    assert table.properties["tokenizer_sha256"] == hashlib.sha256(tok_path.read_bytes()).hexdigest()
    assert table.properties["eod_id"] == "0"
    summary = lake.last_summary(table)
    assert summary["tokenmill.tokenizer_sha256"] == table.properties["tokenizer_sha256"]
    rows = tokens_rows(corpus_cfg)
    assert len(rows) == 401
    texts = corpus_texts()
    for i in (0, 17, 399, 400):
        data, n, source = rows[f"doc-{i:05d}"]
        ids = np.frombuffer(data, "<u2")
        assert ids.size == n
        assert ids.tolist() == tok.encode(texts[i], add_special_tokens=False).ids
        assert tok.decode(ids.tolist()) == texts[i]
        assert source == f"local:/data/part-{i % 4}.jsonl"


def test_train_tokenizer_keeps_a_tokenizer_trained_with_the_same_settings(
    spark, corpus_cfg: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from pipelines.stages.tokenize.spark import train_tokenizer

    trained = Path(corpus_cfg.tokenize.tokenizer)
    tok = tmp_path / "tokenizer.json"
    shutil.copy(trained, tok)
    shutil.copy(trained.with_name("tokenizer.json.train.json"), tmp_path / "tokenizer.json.train.json")
    cfg = corpus_cfg.model_copy(deep=True)
    cfg.tokenize.tokenizer = str(tok)
    before = (tok.read_bytes(), tok.stat().st_mtime_ns)
    with caplog.at_level("INFO", logger="pipelines.stages.tokenize.spark"):
        report = train_tokenizer(spark, cfg)
    assert report.skipped and report.counts == {"docs": 0, "kept": 1}
    assert (tok.read_bytes(), tok.stat().st_mtime_ns) == before
    assert f"train-tokenizer: keeping {tok}, trained with the same tokenize.train settings" in caplog.text

    cfg.tokenize.train.vocab_size = 300  # other settings train again, and the new record keeps that one
    report = train_tokenizer(spark, cfg)
    assert report.counts["kept"] == 0 and report.counts["docs"] == 401 and report.counts["vocab_size"] == 300
    assert tok.read_bytes() != before[0]
    assert train_tokenizer(spark, cfg).counts["kept"] == 1
    cfg.tokenize.train.retrain = True
    assert train_tokenizer(spark, cfg).counts == {"docs": 401, "vocab_size": report.counts["vocab_size"], "kept": 0}


def test_tokenize_eos_and_tiktoken_file_give_same_ids(spark, corpus_cfg: Config, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from pipelines.stages.tokenize.spark import run_tokenize

    hf_rows = tokens_rows(corpus_cfg)
    ranks = tmp_path / "tok.tiktoken"
    ranks.write_bytes(tiktoken_ranks_from_bpe(Tokenizer.from_file(corpus_cfg.tokenize.tokenizer)))
    data = corpus_cfg.model_dump()
    data["tokenize"].update(tokenizer=str(ranks), tiktoken_pattern=GPT2_PATTERN, tiktoken_eod_id=0, eos=True)
    data["lake"]["namespace"] = "tiktoken"
    cfg = Config.model_validate(data)
    write_clean_docs(cfg, corpus_texts())
    report = run_tokenize(spark, cfg)
    tt_rows = tokens_rows(cfg)
    assert report.counts["tokens"] == sum(n for _, n, _ in hf_rows.values()) + 401
    for doc_id, (data_hf, n_hf, _) in hf_rows.items():
        ids = np.frombuffer(tt_rows[doc_id][0], "<u2")
        assert ids[-1] == 0 and tt_rows[doc_id][1] == n_hf + 1
        assert ids[:-1].tobytes() == data_hf


def read_manifest(cfg: Config) -> tuple[Path, dict]:
    out = Path(cfg.shards_uri())
    return out, json.loads((out / "manifest.json").read_text())


def test_shard_writes_full_checked_shards_that_webdataset_reads(spark, corpus_cfg: Config) -> None:
    import webdataset as wds

    from pipelines.stages.shard.spark import run_shard

    report = run_shard(spark, corpus_cfg)
    out, m = read_manifest(corpus_cfg)
    published = Path(report.outputs["manifest"])
    assert published.parent == out and published.name.startswith("manifest-")
    assert published.read_bytes() == (out / "manifest.json").read_bytes()  # manifest.json: the current one's copy
    assert all(s["path"].startswith("runs/") for s in m["shards"])
    rows = tokens_rows(corpus_cfg)
    assert m["n_samples"] == report.counts["samples"] == 401
    assert m["n_tokens"] == sum(n for _, n, _ in rows.values())
    assert report.counts["oversized_docs"] == 1
    target = corpus_cfg.shard.target_bytes
    sizes = [s["bytes"] for s in m["shards"]]
    oversized = [s for s in m["shards"] if s["bytes"] > target]
    assert len(oversized) == 1 and oversized[0]["n_samples"] == 1
    regular = [b for s, b in zip(m["shards"], sizes, strict=True) if s["bytes"] <= target]
    assert all(b >= 0.98 * target for b in regular[:-1])
    assert sum(sizes) == m["total_bytes"]
    for s in m["shards"]:
        blob = (out / s["path"]).read_bytes()
        assert len(blob) == s["bytes"] and hashlib.sha256(blob).hexdigest() == s["sha256"]
        idx = np.load(out / s["index"], allow_pickle=False)
        assert hashlib.sha256((out / s["index"]).read_bytes()).hexdigest() == s["index_sha256"]
        assert len(idx) == s["n_samples"] and int(idx["n_tokens"].sum()) == s["n_tokens"]
        for rec in idx[:3]:
            meta = json.loads(blob[rec["json_offset"] : rec["json_offset"] + rec["json_nbytes"]])
            start = int(rec["tokens_offset"])
            assert blob[start : start + 2 * int(rec["n_tokens"])] == rows[meta["doc_id"]][0]
    urls = [str(out / s["path"]) for s in m["shards"]]
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        seen[meta["doc_id"]] = (sample["__key__"], sample["tokens"], meta)
    assert len(seen) == 401
    for doc_id, (data, n, source) in rows.items():
        key, tokens, meta = seen[doc_id]
        assert tokens == data and meta == {"doc_id": doc_id, "n_tokens": n, "source": source}
    assert sorted(k for k, _, _ in seen.values()) == [f"{i:012d}" for i in range(401)]
    table = lake.load_table(lake.open_catalog(corpus_cfg.lake), corpus_cfg.lake.namespace, "shards")
    shard_rows = lake.read_table(table).sort_by("shard_index").to_pylist()
    assert [r["sha256"] for r in shard_rows] == [s["sha256"] for s in m["shards"]]


def rewrite_tokens(cfg: Config, files: int) -> None:
    """The same tokens rows committed again as `files` data files (so as many read tasks), in reverse order."""
    catalog = lake.open_catalog(cfg.lake)
    table = lake.load_table(catalog, cfg.lake.namespace, "tokens")
    rows = lake.read_table(table)
    rows = rows.take(pa.array(np.arange(rows.num_rows)[::-1])).cast(TOKENS.arrow_schema)
    bounds = np.linspace(0, rows.num_rows, files + 1).astype(int)
    paths = [lake.write_data_file(lake.data_dir(table), rows.slice(a, b - a), prefix="r")
             for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    summary = lake.snapshot_summary(cfg, "tokenize", "x", {
        f"tokenmill.{k}": v for k, v in table.properties.items() if k in ("token_dtype", "eod_id", "vocab_size",
                                                                         "tokenizer_sha256")})
    lake.commit_files(table, paths, summary, overwrite=True)


def shard_doc_ids(out: Path, manifest: dict) -> list[str]:
    """doc_id of every sample of every shard of a manifest, read back through each shard's index."""
    ids = []
    for s in manifest["shards"]:
        blob = (out / s["path"]).read_bytes()
        for rec in np.load(out / s["index"], allow_pickle=False):
            ids.append(json.loads(blob[rec["json_offset"] : rec["json_offset"] + rec["json_nbytes"]])["doc_id"])
    return ids


def test_bucket_groups_give_the_same_bytes_for_one_or_four_partitions(
    spark, corpus_cfg: Config, tmp_path: Path
) -> None:
    """64 KiB shards, group_shards=2: the plan is packed in several bucket groups on the executors and merged;
    the shards are the same bytes whether the tokens are read as one partition or four and written by one task
    or four, never pass the target, are full but for the groups' tails (counted in short_shards) and hold
    every document once."""
    from pipelines.stages.shard.spark import run_shard
    from sharding.write.plan import full_bytes

    manifests, reports = [], []
    for files in (1, 4):
        rewrite_tokens(corpus_cfg, files)
        data = corpus_cfg.model_dump()
        data["shard"].update(output=str(tmp_path / f"p{files}"), target_bytes=64 << 10, group_shards=2,
                             write_tasks=files)
        cfg = Config.model_validate(data)
        reports.append(run_shard(spark, cfg))
        manifests.append(read_manifest(cfg))
    (out, one), (_, four) = manifests
    assert [s["sha256"] for s in four["shards"]] == [s["sha256"] for s in one["shards"]]
    assert [s["index_sha256"] for s in four["shards"]] == [s["index_sha256"] for s in one["shards"]]
    counts = reports[0].counts
    assert counts["bucket_groups"] >= 3 and reports[1].counts == counts
    target = 64 << 10
    regular = [s["bytes"] for s in one["shards"] if s["n_samples"] > 1 or s["bytes"] <= target]
    assert len(regular) == one["n_shards"] - counts["oversized_docs"] and max(regular) <= target
    short = sum(b < full_bytes(target, corpus_cfg.shard.fill) for b in regular)
    # each group ends in one partly filled shard, or two when its last documents no longer fit in one
    assert short == counts["short_shards"] and counts["bucket_groups"] <= short <= 2 * counts["bucket_groups"]
    ids = shard_doc_ids(out, one)
    assert sorted(ids) == sorted(tokens_rows(corpus_cfg)) and len(ids) == 401  # every document exactly once


def test_an_increment_planned_on_the_driver_gets_the_distributed_plan(spark, corpus_cfg: Config) -> None:
    """The driver plan (for an increment's few documents) and the executors' plan, over 1 and 4 partitions, are
    the same plan: same bucket groups, shard runs, per-shard samples and bytes, collisions."""
    from pipelines import lake
    from pipelines.lake.spark import read_table_df
    from pipelines.stages.shard.spark import META_SCHEMA, _meta, plan_shards, plan_shards_on_driver

    data = corpus_cfg.model_dump()
    data["shard"].update(target_bytes=64 << 10, group_shards=2)
    cfg = Config.model_validate(data)
    tokens = lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "tokens")
    df = read_table_df(spark, tokens).select("doc_id", "tokens", "n_tokens", "source")
    meta = df.mapInArrow(_meta(cfg.shard.seed), META_SCHEMA)
    driver, groups = plan_shards_on_driver(meta, cfg)
    assert groups >= 3 and int(driver.shard_samples.sum()) == 401
    for parts in (1, 4):
        plan, n = plan_shards(meta.repartition(parts), cfg, parts)
        assert n == groups and plan.collided == driver.collided
        for name in ("run_keys", "run_shards", "first_index", "shard_samples", "shard_bytes", "oversized"):
            assert np.array_equal(getattr(plan, name), getattr(driver, name)), name


def test_shard_bytes_do_not_depend_on_partitioning(spark, corpus_cfg: Config, tmp_path: Path) -> None:
    from pipelines.stages.shard.spark import run_shard

    run_shard(spark, corpus_cfg)
    _, first = read_manifest(corpus_cfg)
    # Rewrite the tokens table as 7 files in reverse order, write with one task, into another folder.
    rewrite_tokens(corpus_cfg, 7)
    data = corpus_cfg.model_dump()
    data["shard"].update(output=str(tmp_path / "again"), write_tasks=1)
    second_cfg = Config.model_validate(data)
    run_shard(spark, second_cfg)
    _, second = read_manifest(second_cfg)
    assert [s["sha256"] for s in second["shards"]] == [s["sha256"] for s in first["shards"]]
    assert [s["index_sha256"] for s in second["shards"]] == [s["index_sha256"] for s in first["shards"]]
    # A different seed orders documents differently.
    data["shard"].update(output=str(tmp_path / "seeded"), seed=1)
    third_cfg = Config.model_validate(data)
    run_shard(spark, third_cfg)
    _, third = read_manifest(third_cfg)
    assert third["n_samples"] == first["n_samples"]
    assert [s["sha256"] for s in third["shards"]] != [s["sha256"] for s in first["shards"]]


def test_rerun_with_bigger_shards_writes_new_objects_and_keeps_the_old_ones(
    spark, corpus_cfg: Config, tmp_path: Path
) -> None:
    from pipelines.stages.shard.spark import run_shard

    data = corpus_cfg.model_dump()
    data["shard"]["output"] = str(tmp_path / "rerun")
    first = run_shard(spark, Config.model_validate(data))
    out, before = read_manifest(Config.model_validate(data))
    old_files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    data["shard"]["target_bytes"] = 4 << 20
    cfg = Config.model_validate(data)
    report = run_shard(spark, cfg)
    _, after = read_manifest(cfg)
    assert after["n_shards"] < before["n_shards"] and report.counts["samples"] == 401
    assert report.outputs["manifest"] != first.outputs["manifest"]
    assert all(p.read_bytes() == blob for p, blob in old_files.items())  # nothing overwritten or deleted
    new_paths = {s["path"] for s in after["shards"]}
    assert not new_paths & {s["path"] for s in before["shards"]}
    table = lake.load_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "shards")
    summary = lake.last_summary(table)
    assert summary["tokenmill.mode"] == "full"
    assert summary["tokenmill.rebuild_reason"] == "params, tokenizer or code version changed"
    assert summary["tokenmill.manifest_uri"] == report.outputs["manifest"]


def test_empty_corpus_gives_empty_manifest(spark, lake_config: Config, tmp_path: Path) -> None:
    from pipelines.stages.shard.spark import run_shard
    from pipelines.stages.tokenize.spark import run_tokenize
    from pipelines.stages.tokenize.train import save_tokenizer, train_bpe

    cfg = configure(lake_config, tmp_path)
    save_tokenizer(train_bpe(make_texts(50), vocab_size=300), cfg.tokenize.tokenizer)
    write_clean_docs(cfg, [], files=1)
    assert run_tokenize(spark, cfg).counts == {"docs": 0, "tokens": 0, "bytes_in": 0}
    report = run_shard(spark, cfg)
    _, m = read_manifest(cfg)
    assert report.counts["shards"] == 0 and m["n_shards"] == 0 and m["shards"] == [] and m["n_samples"] == 0
    assert m["token_dtype"] == "uint16"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str) -> str:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    try:
        client.create_bucket(Bucket="shards")
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    return s3_endpoint


@pytest.mark.integration
def test_s3_multipart_sink_appears_only_on_commit(s3_env: str) -> None:
    import sharding.write.sinks as writer_mod
    from pipelines.storage import S3Options, s3_client
    from sharding.write.sinks import delete_names, list_names, open_sink, read_object, write_object

    out = "s3://shards/run1"
    s3 = S3Options(endpoint=s3_env)
    client = s3_client(s3)
    sink = writer_mod.S3MultipartSink(client, "shards", "run1/big.bin", part_bytes=5 * 1024 * 1024)
    payload = bytes(range(256)) * (50 * 1024)  # 12.5 MiB
    sink.write(payload[:7_000_000])
    sink.write(payload[7_000_000:])
    assert "big.bin" not in list_names(out, s3=s3)
    sink.commit()
    assert len(sink.parts) == 3
    assert read_object(out, "big.bin", s3=s3) == payload
    aborted = open_sink(out, "never.tar", s3=s3)
    aborted.write(b"x" * 100)
    aborted.abort()
    write_object(out, "manifest.json", b"{}", s3=s3)
    assert sorted(list_names(out, s3=s3)) == ["big.bin", "manifest.json"]
    delete_names(out, ["big.bin"], s3=s3)
    assert list_names(out, s3=s3) == ["manifest.json"]


@pytest.mark.integration
def test_shard_to_s3_gives_the_same_bytes_as_local(spark, corpus_cfg: Config, s3_env: str) -> None:
    from pipelines.stages.shard.spark import run_shard
    from pipelines.storage import S3Options
    from sharding.write.sinks import list_names, read_object

    s3 = S3Options(endpoint=s3_env)

    run_shard(spark, corpus_cfg)
    _, local = read_manifest(corpus_cfg)
    data = corpus_cfg.model_dump()
    data["shard"].update(output="s3://shards/dataset/v1", endpoint=s3_env)
    cfg = Config.model_validate(data)
    report = run_shard(spark, cfg)
    assert report.outputs["manifest"].startswith("s3://shards/dataset/v1/manifest-")
    remote = json.loads(read_object(cfg.shards_uri(), "manifest.json", s3=s3))
    strip = lambda entries: [{**e, "path": e["path"].rsplit("/", 1)[1], "index": e["index"].rsplit("/", 1)[1]}  # noqa: E731
                             for e in entries]
    assert strip(remote["shards"]) == strip(local["shards"])
    for entry in remote["shards"][:2]:
        blob = read_object(cfg.shards_uri(), entry["path"], s3=s3)
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"]
    assert sorted(list_names(cfg.shards_uri(), s3=s3)) == sorted(
        ["manifest.json", report.outputs["manifest"].rsplit("/", 1)[1]])
    run = remote["shards"][0]["path"].rsplit("/", 1)[0]
    assert len(list_names(f"{cfg.shards_uri()}/{run}", s3=s3)) == 2 * remote["n_shards"]
