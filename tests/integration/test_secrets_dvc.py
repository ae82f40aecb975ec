"""Secrets over what a user runs: `dvc repro` of the whole pipeline on a copy of the project, reading a Kafka
topic with a SASL password from a file, an S3 prefix with keys from the environment and a PostgreSQL catalog
(the `postgres` fixture) whose URI password comes from the environment; then `tokenmill ingest -v` and
`tokenmill audit -v`. No file written (lake, dvc.lock, metrics, pointers, logs) holds any of the secrets."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from postgres_server import Postgres
from test_dvc_repro import _project
from test_kafka_ingest import produce

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]  # a whole dvc repro

KAFKA_PASSWORD = "kafka-Pw-7f3a9c51d2"
AWS_KEY_ID = "AKIAPLANTED7Q3X9Z2W"  # the shape of a real key id: redaction must not be what hides it
AWS_SECRET = "aws-Secret-5d1c0e9f7b3a"
SECRETS = (KAFKA_PASSWORD, AWS_KEY_ID, AWS_SECRET)  # and the catalog password of the `postgres` fixture


def _digests(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=2000)  # five Spark stages


def test_no_secret_in_any_file_after_dvc_repro(tmp_path: Path, kafka_bootstrap: str, s3_endpoint: str,
                                               postgres: Postgres) -> None:
    import boto3

    pg_password = postgres.password
    produce(kafka_bootstrap, "secret-docs")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="secret-docs")
    s3.put_object(Bucket="secret-docs", Key="in/s.jsonl",
                  Body=b"".join(b'{"id": "s3-%d", "text": "object store document number %d of the prefix"}\n'
                                % (i, i) for i in range(20)))
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    (secret_dir / "kafka").write_text(KAFKA_PASSWORD + "\n")

    work, env = _project(tmp_path)
    before = _digests(work)  # the project's own files (tests among them name the planted values)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["sources"] = [
        {"type": "local", "path": "tests/data/tiny/input"},
        {"type": "s3", "uri": "s3://secret-docs/in/", "endpoint": s3_endpoint, "region": "us-east-1"},
        {"type": "kafka", "bootstrap": kafka_bootstrap, "topics": ["secret-docs"], "poll_timeout_ms": 3000,
         "client": {"sasl_plain_password": f"${{file:{secret_dir / 'kafka'}}}"}},
    ]
    params["lake"]["catalog"] = {"type": "sql", "uri": postgres.uri("${env:TM_PG_PASSWORD}"),
                                 "warehouse": f"file://{work / 'lake' / 'warehouse'}"}
    params["spark"] = {"master": "local[2]"}
    params["tokenize"]["train"]["vocab_size"] = 600
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**env, "TM_PG_PASSWORD": pg_password, "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": AWS_SECRET}

    first = _run([str(Path(sys.executable).parent / "dvc"), "repro"], work, env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    logs = work / "logs"
    logs.mkdir()
    (logs / "dvc-repro.log").write_text(first.stdout + first.stderr)
    tokenmill = str(Path(sys.executable).parent / "tokenmill")
    for command in ("ingest", "audit"):
        proc = _run([tokenmill, command, "-v", "--config", "params.yaml"], work, env)
        (logs / f"{command}-v.log").write_text(proc.stdout + proc.stderr)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DEBUG" in (logs / "ingest-v.log").read_text()

    # every source was read with its secret, and the catalog is the PostgreSQL one
    from pyiceberg.catalog import load_catalog

    catalog = load_catalog("tokenmill", type="sql", uri=postgres.uri(), warehouse=f"file://{work / 'lake' / 'warehouse'}")
    raw = catalog.load_table(("tokenmill", "raw_docs")).scan(selected_fields=("source_type",)).to_arrow()
    assert set(raw.column("source_type").to_pylist()) == {"local", "s3", "kafka"}
    assert not (work / "lake" / "catalog.db").exists()

    after = _digests(work)
    written = [p for p, digest in after.items() if before.get(p) != digest]  # params.yaml included
    names = {p.name for p in written}
    assert {"dvc.lock", "ingest.json", "curate.json", "shard.json", "ingest-v.log", "audit-v.log"} <= names
    assert any(p.suffix == ".parquet" and "/warehouse/" in str(p) for p in written)
    leaks = [f"{p.relative_to(work)}: secret {i}" for p in written for i, s in enumerate((*SECRETS, pg_password))
             if s.encode() in p.read_bytes()]
    assert not leaks, "; ".join(leaks)
