"""Objects that change after they were ingested, end to end through ingest, curate and the audit: an appended
JSON-lines object is read on from where the last run stopped (no line twice), and a rewritten object is a
new version whose documents replace the old ones per doc_id (the old rows are accounted `superseded`)."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines import lake
from pipelines.config import Config, load_config
from pipelines.ops.audit import audit
from pipelines.stages.curate.spark import run_curate
from pipelines.stages.ingest.spark import run_ingest

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]  # three ingests and curates each


def text_of(doc: str, version: int) -> str:
    """A text of 12 words no other document or version shares (so no dedup decision interferes)."""
    return " ".join(f"{doc}w{k}v{version}" for k in range(12))


def jsonl(docs: list[str], version: int = 1) -> bytes:
    return b"".join(b'{"id": "%s", "text": "%s"}\n' % (d.encode(), text_of(d, version).encode()) for d in docs)


def versions_config(root: Path, source: dict) -> Config:
    return load_config(None, [f"lake.root={root}", "spark.master=local[2]", f"sources={json.dumps([source])}",
                              "curate.filters=[{name: length, min_words: 5, max_chars: 10000}]"])


def check_versions(spark, cfg: Config, put: Callable[[str, bytes], None], caplog: pytest.LogCaptureFixture) -> None:
    """The scenario on any object store: `put(name, bytes)` writes (or overwrites) an object of the source."""
    a, b = [f"a-{i}" for i in range(30)], [f"b-{i}" for i in range(6)]
    put("a.jsonl", jsonl(a[:25]))
    put("b.jsonl", jsonl(b))
    first = run_ingest(spark, cfg)
    assert first.counts["raw_docs"] == 31
    run_curate(spark, cfg)

    put("a.jsonl", jsonl(a[:25]) + jsonl(a[25:]) + b"{broken\n")  # grown: five documents and a bad line
    grown = run_ingest(spark, cfg)
    assert (grown.counts["raw_docs"], grown.counts["quarantined"], grown.counts["objects_appended"]) == (5, 1, 1)
    assert "objects_rewritten" not in grown.counts
    run_curate(spark, cfg)

    put("b.jsonl", jsonl(b[:3], version=2) + jsonl(b[3:5], version=1))  # rewritten: b-5 gone, b-0..2 changed
    rewritten = run_ingest(spark, cfg)
    assert (rewritten.counts["raw_docs"], rewritten.counts["objects_rewritten"]) == (5, 1)
    with caplog.at_level(logging.INFO, logger="pipelines.stages.snapshots"):
        run_curate(spark, cfg)
    assert "full rebuild: raw_docs holds new versions of 1 rewritten object(s)" in caplog.text

    catalog = lake.open_catalog(cfg.lake)
    raw = lake.read_table(catalog.load_table((cfg.lake.namespace, "raw_docs")))
    assert raw.num_rows == 31 + 5 + 5 and len(raw.column("source_offset").to_pylist()) == 41
    a_offsets = [o for u, o in zip(raw.column("source_uri").to_pylist(), raw.column("source_offset").to_pylist(),
                                   strict=True) if u.endswith("/a.jsonl")]
    assert sorted(a_offsets) == list(range(30))  # no line of the grown object read twice
    clean = lake.read_table(catalog.load_table((cfg.lake.namespace, "clean_docs"))).to_pylist()
    texts = {r["doc_id"]: r["text"] for r in clean}
    assert len(texts) == len(clean) == 36  # one surviving version per doc_id
    assert [texts[d] for d in b] == [text_of(d, 2) for d in b[:3]] + [text_of(d, 1) for d in b[3:]]
    decisions = lake.read_table(catalog.load_table((cfg.lake.namespace, "doc_decisions"))).to_pylist()
    reasons = Counter((r["decision"], r["reason"]) for r in decisions)
    assert reasons == {("kept", None): 36, ("duplicate", "superseded"): 5}
    result = audit(cfg)
    assert result.ok, [c for c in result.checks if not c.ok]


def test_appended_and_rewritten_local_objects(spark, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    clock = iter(range(1, 100))

    def put(name: str, data: bytes) -> None:
        path = folder / name
        path.write_bytes(data)
        t = next(clock) * 1_000_000_000
        os.utime(path, ns=(t, t))  # a distinct mtime per write, however coarse the file system's clock

    check_versions(spark, versions_config(tmp_path / "lake", {"type": "local", "path": str(folder)}), put, caplog)


def test_appended_and_rewritten_s3_objects(spark, tmp_path: Path, s3_endpoint: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """An object put again with more lines is read on from where the last run stopped; one put with other
    content is a new version that replaces the old one per doc_id (see check_versions)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="versions")
    source = {"type": "s3", "uri": "s3://versions/in/", "endpoint": s3_endpoint, "region": "us-east-1"}
    check_versions(spark, versions_config(tmp_path / "lake", source),
                   lambda name, data: s3.put_object(Bucket="versions", Key=f"in/{name}", Body=data), caplog)
