"""S3 ingest against moto's S3 server: formats, globs, the object ledger, and exactly-once across SIGKILLs."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from crash import ingest_killed_at

from pipelines import lake
from pipelines.config import Config
from pipelines.stages.ingest.spark import run_ingest

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def _jsonl(ids: list[str]) -> bytes:
    return b"".join(json.dumps({"id": i, "text": f"text of {i}"}).encode() + b"\n" for i in ids)


def upload(endpoint: str, bucket: str) -> list[str]:
    """Objects of every supported format (plus a bad line, a README and a mislabelled object); returns good ids."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    ids = [f"{bucket}-{i}" for i in range(60)]
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": ids[40:60], "text": [f"text of {i}" for i in ids[40:60]]}), buf)
    objects = {
        "data/a.jsonl": _jsonl(ids[:10]) + b"{broken\n",
        "data/b/c.jsonl.gz": gzip.compress(_jsonl(ids[10:25])),
        "data/b/d.jsonl.zst": zstandard.ZstdCompressor().compress(_jsonl(ids[25:40])),
        "data/e.parquet": buf.getvalue(),
        "data/README": b"not data",
        "data/f.jsonl.gz": b"plain text named gz\n",
        "other/g.jsonl": _jsonl(["elsewhere"]),
    }
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return ids


def _config(lake_config: Config, endpoint: str, uri: str) -> Config:
    data = lake_config.model_dump()
    data["sources"] = [{"type": "s3", "uri": uri, "endpoint": endpoint, "region": "us-east-1"}]
    return Config.model_validate(data)


def _lake(cfg: Config):
    catalog = lake.open_catalog(cfg.lake)
    return (lake.read_table(catalog.load_table((cfg.lake.namespace, "raw_docs"))),
            lake.read_table(catalog.load_table((cfg.lake.namespace, "quarantine"))))


def test_s3_prefix_formats_and_ledger(spark, lake_config: Config, s3_endpoint: str) -> None:
    ids = upload(s3_endpoint, "corpus")
    cfg = _config(lake_config, s3_endpoint, "s3://corpus/data/")
    report = run_ingest(spark, cfg)
    c = report.counts
    assert (c["objects_read"], c["raw_docs"], c["quarantined"]) == (5, 60, 2)
    assert c["quarantine_malformed_json"] == 1 and c["quarantine_mislabelled_compression"] == 1
    raw, q = _lake(cfg)
    assert sorted(raw.column("doc_id").to_pylist()) == sorted(ids)
    assert set(raw.column("source_type").to_pylist()) == {"s3"}
    assert "s3://corpus/data/b/c.jsonl.gz" in raw.column("source_uri").to_pylist()

    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).put_object(Bucket="corpus", Key="data/h.jsonl", Body=_jsonl(["new"]))
    again = run_ingest(spark, cfg)
    assert (again.counts["objects_read"], again.counts["objects_skipped"], again.counts["raw_docs"]) == (1, 5, 1)
    assert run_ingest(spark, cfg).counts["records_read"] == 0

    globbed = _config(lake_config.model_copy(), s3_endpoint, "s3://corpus/data/*/*.jsonl.zst")
    globbed.lake.namespace = "globbed"
    assert run_ingest(spark, globbed).counts["raw_docs"] == 15


@pytest.mark.parametrize("point", ["ingest.task_written", "ingest.before_raw_commit"])
def test_sigkill_then_rerun_ingests_every_object_once(spark, lake_config: Config, s3_endpoint: str,
                                                      tmp_path: Path, point: str) -> None:
    bucket = f"crash-{point.rsplit('.', 1)[-1].replace('_', '-')}"
    ids = upload(s3_endpoint, bucket)
    cfg = _config(lake_config, s3_endpoint, f"s3://{bucket}/data")
    ingest_killed_at(cfg, point, tmp_path)
    report = run_ingest(spark, cfg)
    assert report.counts["objects_read"] == 5
    raw, q = _lake(cfg)
    assert sorted(raw.column("doc_id").to_pylist()) == sorted(ids)
    assert q.num_rows == 2
    assert run_ingest(spark, cfg).counts["records_read"] == 0

