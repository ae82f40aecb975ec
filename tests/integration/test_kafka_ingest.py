"""Kafka ingest against a real (Tansu) broker: bounded runs, metadata, secrets kept out of the lake, and
exactly-once across SIGKILLs of the driver at several points."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest
from crash import ingest_killed_at

from pipelines import lake
from pipelines.config import Config
from pipelines.stages.ingest.spark import run_ingest

pytestmark = [pytest.mark.integration, pytest.mark.spark]

N_GOOD, BAD = 240, [b"{not json", b'{"id": "x"}', b"\xff\xfe", b"[1]"]


def produce(bootstrap: str, topic: str, partitions: int = 2) -> list[str]:
    """Produce N_GOOD JSON docs and the BAD values over `partitions`; the last record of each partition is sent
    alone (Tansu's watermark is the base offset of the last batch + 1). Returns the good ids."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    ids = [f"{topic}-{i}" for i in range(N_GOOD)]
    values = [json.dumps({"id": i, "text": f"document {i}", "lang": "en"}).encode() for i in ids] + BAD
    for n, value in enumerate(values[:-partitions]):
        producer.send(topic, value, key=b"k%d" % n, headers=[("h", b"v")], partition=n % partitions)
    producer.flush()
    for p, value in enumerate(values[-partitions:]):
        producer.send(topic, value, partition=p)
        producer.flush()
    producer.close()
    return ids


def _config(lake_config: Config, bootstrap: str, topic: str, **kafka: object) -> Config:
    data = lake_config.model_dump()
    data["sources"] = [{"type": "kafka", "bootstrap": bootstrap, "topics": [topic], "name": topic,
                        "poll_timeout_ms": 3000, **kafka}]
    return Config.model_validate(data)


def _lake(cfg: Config):
    catalog = lake.open_catalog(cfg.lake)
    raw = catalog.load_table((cfg.lake.namespace, "raw_docs"))
    q = catalog.load_table((cfg.lake.namespace, "quarantine"))
    return lake.read_table(raw), lake.read_table(q), raw


def test_bounded_runs_read_everything_once(spark, lake_config: Config, kafka_bootstrap: str, caplog,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ids = produce(kafka_bootstrap, "docs")
    monkeypatch.setenv("TM_TEST_SASL", "hunter2-secret")
    cfg = _config(lake_config, kafka_bootstrap, "docs", max_records=100, records_per_task=30,
                  client={"sasl_plain_password": "${env:TM_TEST_SASL}", "client_id": "tokenmill-test"})
    caplog.set_level(logging.DEBUG)
    first = run_ingest(spark, cfg)
    assert first.counts["records_read"] == 100
    total = first.counts["records_read"]
    while True:
        report = run_ingest(spark, cfg)
        total += report.counts["records_read"]
        if report.counts["records_read"] == 0:
            break
    assert total == N_GOOD + len(BAD)
    raw, q, raw_table = _lake(cfg)
    assert sorted(raw.column("doc_id").to_pylist()) == sorted(ids)
    assert Counter(q.column("error_code").to_pylist()) == {"malformed_json": 1, "missing_text": 1,
                                                             "invalid_utf8": 1, "not_an_object": 1}
    row = raw.filter(pc.equal(raw.column("doc_id"), "docs-0")).to_pylist()[0]
    meta = json.loads(row["metadata"])
    assert meta["lang"] == "en" and meta["_kafka"]["key"] == "k0" and meta["_kafka"]["headers"] == [["h", "v"]]
    assert (row["source_type"], row["source_uri"], row["source_partition"], row["source_offset"]) == ("kafka", "docs", 0, 0)
    offsets = json.loads(raw_table.current_snapshot().summary.additional_properties["tokenmill.ingest.kafka_offsets"])
    assert sum(offsets["docs"].values()) == N_GOOD + len(BAD)
    everything = json.dumps([s.summary.additional_properties for s in raw_table.snapshots()])
    assert "hunter2" not in everything and "hunter2" not in caplog.text
    written = [p for p in Path(cfg.lake.root).rglob("*") if p.is_file()]
    assert written and not [p for p in written if b"hunter2" in p.read_bytes()]


def test_the_cli_writes_and_logs_no_planted_secret(kafka_bootstrap: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import yaml

    produce(kafka_bootstrap, "secrets")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "lake": {"root": str(tmp_path / "lake")}, "spark": {"master": "local[1]"},
        "sources": [{"type": "kafka", "bootstrap": kafka_bootstrap, "topics": ["secrets"], "poll_timeout_ms": 3000,
                     "client": {"sasl_plain_password": "${env:TM_SASL}"}}]}))
    env = {**os.environ, "TM_SASL": "planted-Secret-91c3"}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", "-v", "--config", str(params)],
                          cwd=tmp_path, env=env, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert b"planted-Secret-91c3" not in proc.stdout + proc.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 5
    assert not [p for p in written if b"planted-Secret-91c3" in p.read_bytes()]


@pytest.mark.parametrize("point", ["ingest.task_written", "ingest.after_quarantine_commit"])
def test_sigkill_then_rerun_reads_every_record_once(spark, lake_config: Config, kafka_bootstrap: str,
                                                    tmp_path: Path, point: str) -> None:
    topic = f"crash-{point.rsplit('.', 1)[-1].replace('_', '-')}"
    ids = produce(kafka_bootstrap, topic)
    cfg = _config(lake_config, kafka_bootstrap, topic, records_per_task=50)
    ingest_killed_at(cfg, point, tmp_path)
    report = run_ingest(spark, cfg)
    assert report.counts["records_read"] == N_GOOD + len(BAD)
    raw, q, _ = _lake(cfg)
    assert sorted(raw.column("doc_id").to_pylist()) == sorted(ids)
    assert q.num_rows == len(BAD)
    assert run_ingest(spark, cfg).counts["records_read"] == 0


def test_a_recreated_topic_stops_the_run_until_reset_says_otherwise(spark, lake_config: Config,
                                                                  kafka_bootstrap: str) -> None:
    from kafka.admin import KafkaAdminClient

    from pipelines.errors import StageInputError

    produce(kafka_bootstrap, "recreated")
    cfg = _config(lake_config, kafka_bootstrap, "recreated")
    assert run_ingest(spark, cfg).counts["records_read"] == N_GOOD + len(BAD)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.delete_topics(["recreated"])
    admin.close()
    from kafka import KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic("recreated", num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(6):
        producer.send("recreated", json.dumps({"id": f"new-{i}", "text": "again"}).encode(), partition=i % 2)
        producer.flush()
    producer.close()
    with pytest.raises(StageInputError, match=r"partition recreated/\d: the stored offset \d+ is past its end 3"):
        run_ingest(spark, cfg)
    report = run_ingest(spark, _config(lake_config, kafka_bootstrap, "recreated", reset="earliest"))
    assert report.counts["records_read"] == 6 and report.counts["kafka_offsets_reset"] > 0
    raw, _, _ = _lake(cfg)
    assert sorted(d for d in raw.column("doc_id").to_pylist() if d.startswith("new-")) == [f"new-{i}" for i in range(6)]


def test_two_runs_of_one_topic_read_each_record_once(spark, lake_config: Config, kafka_bootstrap: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.sources.commit import ConcurrentIngestError
    from pipelines.stages.ingest import spark as spark_ingest

    ids = produce(kafka_bootstrap, "twice")
    cfg = _config(lake_config, kafka_bootstrap, "twice")
    inner: list[object] = []

    def hook(name: str) -> None:
        if name == "ingest.after_tasks" and not inner:
            inner.append(None)  # before the inner run reaches this point itself
            inner[0] = run_ingest(spark, cfg)

    monkeypatch.setattr(spark_ingest, "failpoint", hook)
    with pytest.raises(ConcurrentIngestError):
        run_ingest(spark, cfg)
    raw, q, _ = _lake(cfg)
    assert sorted(raw.column("doc_id").to_pylist()) == sorted(ids)
    assert q.num_rows == len(BAD)
