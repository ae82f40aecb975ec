"""`version diff`: documents added and removed between versions, by source and reason, with token counts."""

from __future__ import annotations

from pipelines.config import Config
from pipelines.ops.versions import create_version, resolve_version
from pipelines.ops.versions_diff import diff_versions


def test_diff_groups_added_and_removed_by_source_and_reason(lake_config: Config, lake_builder, first_docs,
                                                            second_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    lake_builder(lake_config, second_docs)
    d = diff_versions(lake_config, resolve_version(lake_config, "v1"), resolve_version(lake_config, "current"))
    assert d.changes == [
        {"change": "added", "source": "local:file:///data/c.jsonl", "reason": "new document", "docs": 2,
         "tokens": 240},
        {"change": "removed", "source": "local:file:///data/a.jsonl", "reason": "now current filtered:length",
         "docs": 1, "tokens": 120},
        {"change": "removed", "source": "local:file:///data/b.jsonl", "reason": "no longer in input", "docs": 1,
         "tokens": 200},
    ]
    assert (d.total("added"), d.total("removed"), d.total("removed", "tokens")) == (2, 2, 320)
    assert d.tables["raw_docs"] == (8, 9) and d.tables["clean_docs"] == (5, 5)
    assert d.shards["n_tokens"] == (700, 620)
    assert not d.params_changed


def test_diff_the_other_way_names_the_earlier_decision(lake_config: Config, lake_builder, first_docs,
                                                       second_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    lake_builder(lake_config, second_docs)
    create_version(lake_config, "v2")
    d = diff_versions(lake_config, resolve_version(lake_config, "v2"), resolve_version(lake_config, "v1"))
    added = [r for r in d.changes if r["change"] == "added"]
    assert {(r["source"], r["reason"], r["docs"], r["tokens"]) for r in added} == {
        ("local:file:///data/a.jsonl", "was v2 filtered:length", 1, 120),
        ("local:file:///data/b.jsonl", "new document", 1, 200)}
    assert {r["reason"] for r in d.changes if r["change"] == "removed"} == {"no longer in input"}


def test_identical_versions_have_no_changes(lake_config: Config, lake_builder, first_docs) -> None:
    lake_builder(lake_config, first_docs)
    v1 = create_version(lake_config, "v1")
    d = diff_versions(lake_config, v1, resolve_version(lake_config, "current"))
    assert d.changes == [] and d.total("added") == 0
