"""Secrets over what a user runs: `dvc repro` of the whole pipeline on a copy of the project, reading a Kafka
topic with a SASL password from a file, an S3 prefix with keys from the environment and a PostgreSQL catalog
whose URI password comes from the environment; then `tokenmill ingest -v` and `tokenmill audit -v`. No file
written (lake, dvc.lock, metrics, pointers, logs, the catalog's own files) holds any of the secrets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import free_port
from test_dvc_repro import _project, _repro, _run
from test_kafka_ingest import produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KAFKA_PASSWORD = "kafka-Pw-7f3a9c51d2"
PG_PASSWORD = "pg-Pw-0b8e44aa19"
AWS_KEY_ID = "AKIAPLANTED7Q3X9Z2W"  # the shape of a real key id: redaction must not be what hides it
AWS_SECRET = "aws-Secret-5d1c0e9f7b3a"
SECRETS = (KAFKA_PASSWORD, PG_PASSWORD, AWS_KEY_ID, AWS_SECRET)


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture
def postgres() -> Iterator[tuple[int, Path]]:
    """(port, data folder) of a PostgreSQL server with role `tokenmill` (password PG_PASSWORD, scram) and
    database `iceberg`, started from Debian's PostgreSQL programs on 127.0.0.1."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (Debian package postgresql)")
    base = Path(tempfile.mkdtemp(prefix="tm-pg-"))
    base.chmod(0o755)
    data, pwfile = base / "data", base / "pw"
    pwfile.write_text(PG_PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(pwfile, "postgres")
    port = free_port()
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "tokenmill", "--auth=scram-sha-256",
                                 f"--pwfile={pwfile}"]), check=True, capture_output=True)
    pwfile.unlink()
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-w", "-l", str(base / "server.log"), "-o",
                                 f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="tokenmill", password=PG_PASSWORD,
                                dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE iceberg")
        conn.close()
        yield port, base
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_no_secret_in_any_file_after_dvc_repro(tmp_path: Path, kafka_bootstrap: str, s3_endpoint: str,
                                               postgres: tuple[int, Path]) -> None:
    import boto3

    port, pg_folder = postgres
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
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["sources"] = [
        {"type": "local", "path": "tests/data/tiny/input"},
        {"type": "s3", "uri": "s3://secret-docs/in/", "endpoint": s3_endpoint, "region": "us-east-1"},
        {"type": "kafka", "bootstrap": kafka_bootstrap, "topics": ["secret-docs"], "poll_timeout_ms": 3000,
         "client": {"sasl_plain_password": f"${{file:{secret_dir / 'kafka'}}}"}},
    ]
    params["lake"]["catalog"] = {
        "type": "sql", "uri": f"postgresql+psycopg2://tokenmill:${{env:TM_PG_PASSWORD}}@127.0.0.1:{port}/iceberg",
        "warehouse": f"file://{work / 'lake' / 'warehouse'}"}
    params["spark"] = {"master": "local[2]"}
    params["tokenize"]["train"]["vocab_size"] = 600
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**env, "TM_PG_PASSWORD": PG_PASSWORD, "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": AWS_SECRET}

    first = _repro(work, env)
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

    catalog = load_catalog("check", type="sql", uri=f"postgresql+psycopg2://tokenmill:{PG_PASSWORD}@127.0.0.1:{port}"
                           "/iceberg", warehouse=f"file://{work / 'lake' / 'warehouse'}")
    raw = catalog.load_table(("tokenmill", "raw_docs")).scan(selected_fields=("source_type",)).to_arrow()
    assert set(raw.column("source_type").to_pylist()) == {"local", "s3", "kafka"}
    assert not (work / "lake" / "catalog.db").exists()

    time.sleep(1)  # let the server flush its log
    written = [p for root in (work, pg_folder) for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    names = {p.name for p in written}
    assert {"dvc.lock", "ingest.json", "curate.json", "shard.json", "ingest-v.log", "audit-v.log"} <= names
    assert any(p.suffix == ".parquet" and "/warehouse/" in str(p) for p in written)
    leaks = [(str(p), s) for p in written for s in SECRETS if s.encode() in p.read_bytes()]
    assert not leaks, leaks
