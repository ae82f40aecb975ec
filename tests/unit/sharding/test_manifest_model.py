"""The one manifest model (sharding.format): build -> bytes -> parse round-trips byte for byte, every reader
form of a location gives the same manifest, bad documents are one ManifestError naming the manifest, and
tars are read member by member one way (iter_members) with what the index says."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from sharding import ManifestError
from sharding.format import (
    INDEX_DTYPE,
    build_manifest,
    index_bytes,
    index_name,
    iter_members,
    manifest_bytes,
    parse_manifest,
    read_index,
    read_manifest,
    sample_json,
    shard_name,
)
from sharding.loader.manifest import read_manifest as read_loader_manifest
from sharding.write.sinks import open_sink, write_object
from sharding.write.writer import ShardStats, ShardWriter

DOCS = [np.arange(n, dtype="<u2") for n in (5, 0, 300, 17)]


def _dataset(folder: Path) -> tuple[bytes, list[ShardStats]]:
    stats, key = [], 0
    for s, docs in enumerate((DOCS[:2], DOCS[2:])):
        writer = ShardWriter(open_sink(str(folder), shard_name(s)), s, key)
        for i, toks in enumerate(docs):
            writer.add(toks.tobytes(), sample_json(f"doc-{key + i}", len(toks), "local:x"), len(toks))
        st = writer.finish()
        write_object(str(folder), index_name(s), index_bytes(st.index))
        stats.append(st)
        key += len(docs)
    doc = build_manifest(stats, token_dtype="uint16", eod_id=0, vocab_size=512, tokenizer_sha256="t" * 64,
                         target_bytes=1 << 20, params_hash="p")
    blob = manifest_bytes(doc)
    (folder / "manifest.json").write_bytes(blob)
    return blob, stats


def test_a_parsed_manifest_serialises_to_the_same_bytes(tmp_path: Path) -> None:
    blob, _ = _dataset(tmp_path)
    m = parse_manifest(blob, "m.json")
    assert manifest_bytes(dict(m.document)) == blob
    assert m.totals() == {"n_shards": 2, "n_samples": 4, "n_tokens": 322, "total_bytes": int(m.nbytes.sum())}
    assert m.paths == ("shard-000000.tar", "shard-000001.tar") and m.first_sample.tolist() == [0, 2]
    assert m.token_dtype == np.dtype("<u2") and m.eod_id == 0 and m.vocab_size == 512


def test_every_form_of_a_local_location_reads_the_same_manifest(tmp_path: Path, monkeypatch) -> None:
    _dataset(tmp_path / "ds")
    monkeypatch.chdir(tmp_path)
    forms = ["ds", "ds/manifest.json", str(tmp_path / "ds"), f"file://{tmp_path}/ds/manifest.json",
             f"file:{tmp_path}/ds", f"file://localhost{tmp_path}/ds/"]
    uris = {read_manifest(f).uri for f in forms}
    assert uris == {str(tmp_path / "ds" / "manifest.json")}
    assert read_loader_manifest(f"file://{tmp_path}/ds/manifest.json").n_shards == 2
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(f"file://{tmp_path}/nowhere")


def _doc(blob: bytes) -> dict:
    return json.loads(blob)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="tokenmill-shards/2"), "format 'tokenmill-shards/2'"),
        (lambda d: d.update(token_dtype="int8"), "token_dtype 'int8'"),
        (lambda d: d.update(total_bytes=1), "total_bytes=1 but the shards add up to"),
        (lambda d: d["shards"][1].update(path="../x.tar"), r"shards\[1\]: path '../x.tar' must be a relative"),
        (lambda d: d["shards"][0].pop("index_sha256"), r"shards\[0\]: missing key 'index_sha256'"),
        (lambda d: d["shards"][0].update(n_samples=True), "key 'n_samples' has type bool"),
        (lambda d: d.update(eod_id=512), "eod_id 512 outside vocab_size 512"),
    ],
)
def test_a_bad_document_is_one_manifest_error_naming_it(tmp_path: Path, change, message: str) -> None:
    blob, _ = _dataset(tmp_path)
    doc = _doc(blob)
    change(doc)
    with pytest.raises(ManifestError, match=message) as info:
        parse_manifest(json.dumps(doc), "s3://b/v1/manifest.json")
    assert str(info.value).startswith("s3://b/v1/manifest.json")


def test_deep_or_foreign_json_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="nested too deep"):
        parse_manifest("[" * 100_000 + "]" * 100_000, "deep.json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        parse_manifest(b"{", "cut.json")
    with pytest.raises(ManifestError, match="must be a JSON object"):
        parse_manifest(b"[]", "list.json")


def test_an_empty_dataset_parses_but_the_loader_refuses_it(tmp_path: Path) -> None:
    doc = build_manifest([], token_dtype="uint32", eod_id=1, vocab_size=70_000, tokenizer_sha256="t",
                         target_bytes=4096, params_hash="p")
    (tmp_path / "manifest.json").write_bytes(manifest_bytes(doc))
    assert read_manifest(str(tmp_path)).n_shards == 0
    with pytest.raises(ManifestError, match="no shards"):
        read_loader_manifest(str(tmp_path))


def test_iter_members_agrees_with_the_index(tmp_path: Path) -> None:
    _, stats = _dataset(tmp_path)
    blob = (tmp_path / "shard-000001.tar").read_bytes()
    members = list(iter_members(io.BytesIO(blob), want=lambda name: name.endswith(".json")))
    assert [m.name for m, _ in members] == ["000000000002.tokens", "000000000002.json",
                                            "000000000003.tokens", "000000000003.json"]
    index = read_index(index_bytes(stats[1].index))
    assert [m.offset for m, _ in members] == [v for row in index for v in (row["tokens_offset"], row["json_offset"])]
    assert members[0][1] is None and json.loads(members[1][1] or b"")["doc_id"] == "doc-2"
    assert members[2][0].size == 17 * 2
    with pytest.raises(ValueError, match="data cut short"):
        list(iter_members(io.BytesIO(blob[:1200])))
    bad = bytearray(blob)
    header = members[1][0].offset - 512  # the second member's header
    bad[header + 3] ^= 0x01  # one bit of its name
    with pytest.raises(ValueError, match=f"tar header at byte {header}: checksum"):
        list(iter_members(io.BytesIO(bytes(bad))))


def test_read_index_refuses_negative_or_foreign_arrays() -> None:
    good = np.array([(512, 3, 1536, 40)], dtype=INDEX_DTYPE)
    assert read_index(index_bytes(good)).tolist() == good.tolist()
    bad = good.copy()
    bad["json_nbytes"] = -1
    with pytest.raises(ValueError, match="negative"):
        read_index(index_bytes(bad))
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="not a shard index"):
        read_index(buf.getvalue())
