"""Lineage: from a document or a shard member back to its source, at a version."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import Config
from pipelines.errors import LineageError
from pipelines.ops.lineage import doc_at_member, trace_document
from pipelines.ops.versions import create_version


def test_kept_document_traces_to_source_decision_and_shard_member(lake_config: Config, lake_builder,
                                                                   first_docs) -> None:
    snaps = lake_builder(lake_config, first_docs)
    trace = trace_document(lake_config, "d6")
    assert trace.source == {"source_type": "local", "source_uri": "file:///data/b.jsonl", "source_partition": None,
                            "source_offset": 3}
    assert trace.ingest_snapshot_id == snaps["raw_docs"]
    assert trace.snapshots["doc_decisions"] == snaps["doc_decisions"]
    assert (trace.decision, trace.reason, trace.in_clean_docs, trace.n_tokens) == ("kept", None, True, 200)
    assert trace.signals["language"] == "fr" and trace.signals["n_words"] == 100
    # kept order d0 d1 d2 d6 d7, three per shard: d6 is the 4th sample, first of shard 1
    pos = trace.position
    assert pos.shard.startswith("runs/") and pos.shard.endswith("/shard-000001.tar")
    assert (pos.shard_number, pos.key, pos.n_tokens) == (1, "000000000003", 200)
    data = (Path(lake_config.shards_uri()) / pos.shard).read_bytes()
    assert b'"doc_id":"d6"' in data[pos.json_offset:pos.json_offset + pos.json_nbytes]
    text = "\n".join(trace.lines())
    assert "local file:///data/b.jsonl record 3" in text
    assert f"{pos.shard} member 000000000003.tokens" in text


def test_duplicate_names_its_kept_document_and_has_no_shard(lake_config: Config, lake_builder,
                                                            first_docs) -> None:
    lake_builder(lake_config, first_docs)
    trace = trace_document(lake_config, "d4")
    assert (trace.decision, trace.reason, trace.kept_doc_id, trace.cluster_id) == ("duplicate", "near", "d0", "d0")
    assert trace.position is None and trace.n_tokens is None and not trace.in_clean_docs
    assert "duplicate (near) of d0, cluster d0, similarity 0.900 (shingles)" in "\n".join(trace.lines())
    assert (trace.similarity, trace.verified_by) == (0.9, "shingles")
    kept = trace_document(lake_config, "d0")
    assert kept.cluster_size == 3 and "kept, cluster of 3" in "\n".join(kept.lines())


def test_lineage_at_a_version_reads_that_versions_snapshots(lake_config: Config, lake_builder, first_docs,
                                                            second_docs) -> None:
    lake_builder(lake_config, first_docs)
    v1 = create_version(lake_config, "v1")
    lake_builder(lake_config, second_docs)
    then = trace_document(lake_config, "d1", version="v1")
    now = trace_document(lake_config, "d1")
    assert then.decision == "kept" and then.position is not None
    assert then.position.manifest_uri == v1.manifest_uri
    assert (now.decision, now.reason, now.position) == ("filtered", "length", None)
    with pytest.raises(LineageError, match="'d6' is not in raw_docs at version current"):
        trace_document(lake_config, "d6")
    assert trace_document(lake_config, "d6", version="v1").position.key == "000000000003"


def test_member_resolves_to_its_document(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    assert doc_at_member(lake_config, "shard-000001.tar", "000000000004.json") == "d7"
    assert doc_at_member(lake_config, "1", "3") == "d6"
    assert doc_at_member(lake_config, "shard-000000", "000000000000.tokens") == "d0"
    with pytest.raises(LineageError, match="member 000000000004 is not in runs/.*/shard-000000.tar"):
        doc_at_member(lake_config, "0", "4")
    with pytest.raises(LineageError, match="no shard 7"):
        doc_at_member(lake_config, "7", "0")


def test_shard_without_index_is_searched_in_the_tar(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    for index in Path(lake_config.shards_uri()).glob("runs/*/shard-000001.idx.npy"):
        index.unlink()
    pos = trace_document(lake_config, "d7").position
    assert pos.shard.endswith("/shard-000001.tar") and (pos.key, pos.n_tokens) == ("000000000004", 140)
    data = (Path(lake_config.shards_uri()) / pos.shard).read_bytes()
    assert data[pos.json_offset:pos.json_offset + pos.json_nbytes].startswith(b'{"doc_id":"d7"')
