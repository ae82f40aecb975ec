"""The shard writer, its atomic local sink and the manifest (S3 sinks: tests/spark/test_tokenize_shard.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from sharding.format import build_manifest, manifest_bytes, parse_manifest
from sharding.format.tar import END_OF_ARCHIVE, encode_sample, sample_json
from sharding.write.sinks import list_names, open_sink
from sharding.write.writer import ShardStats, ShardWriter

SAMPLES = [(np.arange(n, dtype="<u2").tobytes(), sample_json(f"d{n}", n, "local:x"), n) for n in (0, 3, 700)]


def write_shard(out: str, name: str = "shard-000000.tar", **kw: object) -> ShardStats:
    writer = ShardWriter(open_sink(out, name, **kw), 0, first_index=5)
    for tokens, meta, n in SAMPLES:
        writer.add(tokens, meta, n)
    return writer.finish()


def expected_bytes() -> bytes:
    return b"".join(encode_sample(5 + i, t, m) for i, (t, m, _) in enumerate(SAMPLES)) + END_OF_ARCHIVE


def test_shard_writer_output_index_and_stats(tmp_path: Path) -> None:
    stats = write_shard(str(tmp_path))
    blob = (tmp_path / "shard-000000.tar").read_bytes()
    assert blob == expected_bytes()
    assert stats.sha256 == hashlib.sha256(blob).hexdigest() and stats.bytes == len(blob)
    assert (stats.n_samples, stats.n_tokens) == (3, 703)
    for rec, (tokens, meta, n) in zip(stats.index, SAMPLES, strict=True):
        assert blob[rec["tokens_offset"] : rec["tokens_offset"] + 2 * n] == tokens and rec["n_tokens"] == n
        assert blob[rec["json_offset"] : rec["json_offset"] + rec["json_nbytes"]] == meta
    assert list_names(str(tmp_path)) == ["shard-000000.tar"]


def test_webdataset_reads_the_shard(tmp_path: Path) -> None:
    import webdataset as wds

    write_shard(str(tmp_path))
    got = [(s["__key__"], s["tokens"], json.loads(s["json"]))
           for s in wds.WebDataset(str(tmp_path / "shard-000000.tar"), shardshuffle=False)]
    assert [k for k, _, _ in got] == ["000000000005", "000000000006", "000000000007"]
    assert [t for _, t, _ in got] == [t for t, _, _ in SAMPLES]
    assert got[2][2] == {"doc_id": "d700", "n_tokens": 700, "source": "local:x"}


def test_aborted_local_sink_leaves_nothing(tmp_path: Path) -> None:
    sink = open_sink(str(tmp_path), "shard-000001.tar")
    sink.write(b"partial")
    assert list_names(str(tmp_path))[0].startswith(".shard-000001.tar.tmp-")
    sink.abort()
    assert list_names(str(tmp_path)) == []


def test_manifest_adds_up_and_rejects_gaps() -> None:
    shards = [ShardStats(0, 2048, 1, 3, "a" * 64, "b" * 64), ShardStats(1, 4096, 2, 5, "c" * 64, "d" * 64)]
    m = build_manifest(shards, token_dtype="uint16", eod_id=0, vocab_size=600, tokenizer_sha256="t",
                       target_bytes=8192, params_hash="p")
    assert (m["n_shards"], m["n_samples"], m["n_tokens"], m["total_bytes"]) == (2, 3, 8, 6144)
    assert m["shards"][1]["path"] == "shard-000001.tar" and m["shards"][1]["index"] == "shard-000001.idx.npy"
    assert parse_manifest(manifest_bytes(m)).document == m
    bad = dict(m, n_tokens=9)
    with pytest.raises(ValueError, match="n_tokens=9"):
        parse_manifest(manifest_bytes(bad))
    with pytest.raises(ValueError, match="shard 0 is missing"):
        build_manifest(shards[1:], token_dtype="uint16", eod_id=0, vocab_size=1, tokenizer_sha256="t",
                       target_bytes=1, params_hash="p")
    with pytest.raises(ValueError, match="int8"):
        build_manifest([], token_dtype="int8", eod_id=0, vocab_size=1, tokenizer_sha256="t", target_bytes=1,
                       params_hash="p")
