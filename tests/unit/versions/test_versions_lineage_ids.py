"""Lineage at the edges: a filtered document, unknown ids and versions, a duplicate at an older version, and
document ids with quotes, slashes or non-ASCII characters."""

from __future__ import annotations

import pytest
from versions_lake import doc

from pipelines.config import Config
from pipelines.errors import LineageError, VersionError
from pipelines.ops.lineage import trace_document
from pipelines.ops.versions import (
    create_version,
)


def test_lineage_of_a_filtered_document(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    t = trace_document(lake_config, "d3")
    assert (t.decision, t.reason, t.position, t.n_tokens, t.in_clean_docs) == ("filtered", "length", None, None,
                                                                                False)
    text = "\n".join(t.lines())
    assert "filtered (length)" in text and "shard" not in text
    assert t.source["source_uri"] == "file:///data/b.jsonl" and t.source["source_offset"] == 0


def test_lineage_of_unknown_ids_and_versions(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    for odd in ("nope", "", "d1'; --", "d%", "D1"):
        with pytest.raises(LineageError, match="is not in raw_docs at version current"):
            trace_document(lake_config, odd)
    with pytest.raises(VersionError, match="unknown version 'v9'"):
        trace_document(lake_config, "d1", version="v9")


def test_lineage_of_a_duplicate_at_an_older_version(lake_config: Config, lake_builder, first_docs,
                                                    second_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    lake_builder(lake_config, [d for d in second_docs if d["doc_id"] != "d5"])
    t = trace_document(lake_config, "d5", version="v1")
    assert (t.decision, t.reason, t.kept_doc_id, t.position) == ("duplicate", "exact", "d0", None)
    with pytest.raises(LineageError, match="'d5' is not in raw_docs at version current"):
        trace_document(lake_config, "d5")


def test_lineage_of_a_document_id_with_quotes_and_slashes(lake_config: Config, lake_builder, first_docs) -> None:
    docs = [*first_docs, doc('a"b\\c/d', uri="file:///data/c.jsonl", offset=0, n_words=20)]
    lake_builder(lake_config, docs)
    t = trace_document(lake_config, 'a"b\\c/d')
    assert t.decision == "kept" and t.position is not None and t.position.key == "000000000005"


def test_lineage_finds_a_document_id_with_non_ascii_characters(lake_config: Config, lake_builder,
                                                                first_docs) -> None:
    lake_builder(lake_config, [*first_docs, doc("doc-é", uri="file:///data/c.jsonl", offset=0, n_words=20)])
    t = trace_document(lake_config, "doc-é")
    assert t.decision == "kept" and t.position is not None and t.position.key == "000000000005"
