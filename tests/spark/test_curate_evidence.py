"""Curate records evidence for every removal (similarity, verified_by) and the kept documents' cluster_size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines import lake
from pipelines.config import load_config
from pipelines.ops.audit import audit
from pipelines.stages import run_stage

pytestmark = pytest.mark.spark


def _words(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"w{int(x)}" for x in rng.integers(0, 50_000, size=n)]


def _corpus() -> dict[str, str]:
    """A chain a~b~c (J(a,b) ~ J(b,c) ~ 0.85, J(a,c) ~ 0.73), an exact copy of a and of b, an unrelated d."""
    a = _words(200, 0)
    b = a[:40] + _words(12, 1) + a[52:]
    c = b[:140] + _words(12, 2) + b[152:]
    docs = {"ch-a": a, "ch-a2": a, "ch-b": b, "ch-b-copy": b, "ch-c": c, "ch-d": _words(200, 3)}
    return {k: " ".join(v) for k, v in docs.items()}


@pytest.mark.parametrize("incremental", [False, True])
def test_decisions_carry_similarity_evidence_and_cluster_size(spark, tmp_path: Path, incremental: bool) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "docs.jsonl").write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in _corpus().items()))
    cfg = load_config(None, [f"lake.root={tmp_path / 'lake'}", f"sources=[{{type: local, path: '{src}'}}]",
                             "curate.dedup.keep=[doc_id]", f"curate.dedup.incremental={str(incremental).lower()}"])
    run_stage("ingest", cfg, spark)
    report = run_stage("curate", cfg, spark)
    catalog = lake.open_catalog(cfg.lake)
    rows = {r["doc_id"]: r for r in lake.read_table(lake.ensure_table(catalog, "tokenmill", "doc_decisions")).to_pylist()}
    by = "signature" if incremental else "shingles"  # the default; the index of incremental runs has no texts
    fate = {k: (r["decision"], r["reason"], r["kept_doc_id"], r["verified_by"], r["cluster_size"])
            for k, r in rows.items()}
    assert fate == {
        "ch-a": ("kept", None, None, None, 4),  # itself, its exact copy, b (near) and b's exact copy
        "ch-a2": ("duplicate", "exact", "ch-a", "exact_hash", None),
        "ch-b": ("duplicate", "near", "ch-a", by, None),
        # b's exact copy is re-pointed to the document kept in b's place, with b's evidence
        "ch-b-copy": ("duplicate", "exact", "ch-a", by, None),
        "ch-c": ("kept", None, None, None, 1),  # chained to a only through b: kept, not removed
        "ch-d": ("kept", None, None, None, 1),
    }
    assert rows["ch-a2"]["similarity"] == 1.0
    assert 0.77 <= rows["ch-b"]["similarity"] == rows["ch-b-copy"]["similarity"] < 1.0
    clean = {r["doc_id"]: r["cluster_size"]
             for r in lake.read_table(lake.ensure_table(catalog, "tokenmill", "clean_docs")).to_pylist()}
    assert clean == {"ch-a": 4, "ch-c": 1, "ch-d": 1}
    assert report.counts["near_largest_component"] == 3
    assert report.counts["near_components_over_max_cluster"] == 0
    assert all(c.ok for c in audit(cfg).checks if c.name == "raw_docs = kept + filtered + duplicate")
