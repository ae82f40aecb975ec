"""The HTML report: the numbers it gathers and a page with every section and embedded figures."""

from __future__ import annotations

import base64
import re

import numpy as np
import pyarrow as pa
import pytest

from pipelines.config import Config
from pipelines.ops.html_report import cluster_sizes, collect_report, outcome_counts, write_report
from pipelines.ops.versions import create_version


def test_cluster_sizes_count_distinct_members_with_the_kept_one() -> None:
    sizes = cluster_sizes(pa.array(["a", "a", None, "x", "x", "x"]), pa.array(["b", "c", "a", "y", "z", "x"]),
                          pa.array(["a", "a", None, "x", "x", None]))
    assert sizes.tolist() == [3, 3]
    assert cluster_sizes(pa.array([None], pa.string()), pa.array(["a"]), pa.array([None], pa.string())).size == 0
    with pytest.raises(ValueError, match="equal lengths, got 2, 1, 1"):
        cluster_sizes(pa.array(["a", "b"]), pa.array(["a"]), pa.array(["a"]))


def test_outcome_counts_label_reasons() -> None:
    t = pa.table({"decision": ["kept", "kept", "filtered", "duplicate", "duplicate"],
                  "reason": [None, None, "length", "near", "near"]})
    assert outcome_counts(t) == {"kept": 2, "filtered:length": 1, "duplicate:near": 2}


def test_collect_gathers_the_version_and_its_predecessor(lake_config: Config, lake_builder, first_docs,
                                                         second_docs) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1")
    lake_builder(lake_config, second_docs)
    d = collect_report(lake_config)
    assert d.version.name == "current" and d.previous.name == "v1"
    assert d.outcomes == {"kept": 5, "filtered:length": 2, "duplicate:near": 1, "duplicate:exact": 1}
    assert d.cluster_sizes.tolist() == [3]
    assert d.removal_similarity.tolist() == [0.9]  # the near removal's evidence (the exact one is not plotted)
    assert d.languages == {"en": 3, "de": 2} and d.previous_languages == {"en": 3, "de": 1, "fr": 1}
    assert sorted(d.n_tokens.tolist()) == [60, 80, 140, 160, 180]
    assert len(d.shard_sizes) == 2 and d.target_bytes == 1 << 20
    kept_words, dropped_words = d.signals["n_words"]
    assert sorted(kept_words.tolist()) == [30, 40, 70, 80, 90]
    assert sorted(dropped_words.tolist()) == [3, 40, 40, 60]
    assert d.diff.total("added") == 2 and d.diff.total("removed") == 2
    assert {c.name for c in d.checks} >= {"volume kept documents", "volume tokens", "schema raw_docs"}


def test_report_page_has_every_section_and_real_pngs(lake_config: Config, lake_builder, first_docs,
                                                     second_docs, tmp_path) -> None:
    lake_builder(lake_config, first_docs)
    create_version(lake_config, "v1", message="baseline <first>")
    lake_builder(lake_config, second_docs)
    out = write_report(lake_config, tmp_path / "out" / "report.html")
    page = out.read_text()
    for heading in ("Document outcomes", "Quality signals", "Duplicate clusters", "Language mix",
                    "Document length", "Shards", "Change against v1", "Monitoring checks"):
        assert f"<h2>{heading}</h2>" in page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 8  # with the similarities of near removals
    assert "1 near-duplicate removals; each document" in page and "(lowest 0.900, median 0.900)" in page
    assert all(base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n" for png in images)
    assert "2 documents added (240 tokens), 2 removed (320 tokens)" in page
    assert "now current filtered:length" in page
    # the first version's page: no predecessor, and escaped user text
    first = write_report(lake_config, tmp_path / "v1.html", version="v1").read_text()
    assert "No earlier version to compare with." in first and "baseline &lt;first&gt;" in first
    assert "<first>" not in first


def test_token_histogram_copes_with_one_length() -> None:
    from pipelines.ops.report_plots import token_length_hist

    png = base64.b64decode(token_length_hist(np.array([5, 5, 5]), np.array([], dtype=np.int64)))
    assert png[:4] == b"\x89PNG"
