"""`tokenmill run --follow` against a real (Tansu) Kafka broker: cycles publish what arrived, freshness is
measured, SIGTERM finishes the cycle in progress, and a SIGKILL followed by a restart loses and doubles
nothing (the audit passes, every record is in raw_docs once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines import lake
from pipelines.config import Config, load_config
from pipelines.ops.audit import audit
from pipelines.stages.follow import StopFlag, run_follow

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
KJV = REPO / "data" / "sample" / "kjv.jsonl"


def _chapters(first: int, n: int) -> list[dict[str, str]]:
    rows = []
    for line in KJV.read_bytes().splitlines():  # the sample plants a few bad lines: take good ones only
        try:
            r = json.loads(line.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("text"), str):
            rows.append(r)
    return [{"id": r["id"], "text": r["text"][:600]} for r in rows[first : first + n]]


def produce(bootstrap: str, topic: str, docs: list[dict[str, str]], *, create: bool = False) -> None:
    """Send `docs` to partition 0 of `topic` one record per batch (Tansu's high watermark is the base
    offset of the last batch + 1, so unbatched records are all visible)."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    if create:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    for d in docs:
        producer.send(topic, json.dumps(d).encode(), partition=0)
        producer.flush()
    producer.close()


def _config(root: Path, bootstrap: str, topic: str, **follow: object) -> Config:
    return load_config(None, [
        f"lake.root={root}",
        "spark.master=local[2]",
        f"sources=[{{type: kafka, bootstrap: '{bootstrap}', topics: [{topic}], name: {topic}, poll_timeout_ms: 3000}}]",
        f"tokenize.tokenizer={root}/tokenizer.json",
        "tokenize.train.vocab_size=400",
        "shard.target_bytes=65536",
        *[f"follow.{k}={v}" for k, v in follow.items()],
    ])


def _raw_ids(cfg: Config) -> list[str]:
    table = lake.ensure_table(lake.open_catalog(cfg.lake), cfg.lake.namespace, "raw_docs")
    return sorted(lake.read_table(table, ("doc_id",)).column("doc_id").to_pylist())


def _manifest_samples(cfg: Config) -> int:
    return int(json.loads((Path(cfg.shards_uri()) / "manifest.json").read_text())["n_samples"])


def test_cycles_publish_what_arrived_and_measure_freshness(spark, tmp_path, kafka_bootstrap) -> None:
    cfg = _config(tmp_path / "lake", kafka_bootstrap, "follow-a", interval=0.5, poll=0.2)
    first, second = _chapters(0, 12), _chapters(12, 8)
    produce(kafka_bootstrap, "follow-a", first, create=True)
    flag = StopFlag()
    sent: list[float] = []

    def on_cycle(report) -> None:  # runs between cycles, in the loop's thread
        if report.cycle == 1:
            sent.append(time.time())
            produce(kafka_bootstrap, "follow-a", second)
            sent.append(time.time())
        if report.cycle == 3:
            flag.stopping.set()

    cycles = run_follow(cfg, spark, flag=flag, on_cycle=on_cycle)
    assert [c.records_read for c in cycles] == [12, 8, 0]
    assert [c.stages for c in cycles[1:]] == [["ingest", "curate", "tokenize", "shard"], ["ingest"]]
    assert _raw_ids(cfg) == sorted(d["id"] for d in first + second)
    result = audit(cfg)
    assert result.ok, [c for c in result.checks if not c.ok]
    # every document kept in a cycle has a freshness: its Kafka timestamp to that cycle's manifest
    kept = _manifest_samples(cfg)
    assert len(cycles[0].freshness) + len(cycles[1].freshness) == kept > 0
    assert all(f >= 0 for c in cycles for f in c.freshness)
    # the second cycle's documents were sent between `sent[0]` and `sent[1]`: publish time minus their
    # freshness gives back Kafka timestamps in that span (to the broker's millisecond)
    published = cycles[1].published
    assert published is not None and cycles[1].freshness
    assert all(sent[0] - 0.01 <= published - f <= sent[1] + 0.01 for f in cycles[1].freshness)
    metrics = json.loads((Path(cfg.lake.root) / "metrics" / "follow.json").read_text())
    assert [c["cycle"] for c in metrics["cycles"]] == [1, 2, 3] and metrics["published_docs"] == kept


def _child(cfg_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--follow", "-c", str(cfg_path)],
                            cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _wait_for(log: Path, text: str, count: int, proc: subprocess.Popen[bytes], limit: float = 400) -> None:
    deadline = time.monotonic() + limit
    while log.read_text(errors="replace").count(text) < count:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"no {count} x {text!r} in {limit}s"
        time.sleep(0.5)


def test_sigterm_finishes_the_cycle_and_sigkill_then_restart_loses_nothing(tmp_path, kafka_bootstrap) -> None:
    root = tmp_path / "lake"
    # a cycle starts once all 10 records of a batch wait (the interval alone would take an hour)
    cfg = _config(root, kafka_bootstrap, "follow-b", interval=3600, min_records=10, poll=0.5)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    log = tmp_path / "child.log"
    a, b, c = _chapters(20, 10), _chapters(30, 10), _chapters(40, 10)
    produce(kafka_bootstrap, "follow-b", a, create=True)

    # SIGTERM during a cycle: the cycle finishes (its records are published), then the run exits 0
    proc = _child(path, log)
    _wait_for(log, "follow: cycle 1 ", 1, proc)
    produce(kafka_bootstrap, "follow-b", b)
    _wait_for(log, "stage curate: start", 2, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(300) == 0, log.read_text()[-3000:]
    assert "follow: cycle 2 read 10 records" in log.read_text()
    assert _raw_ids(cfg) == sorted(d["id"] for d in a + b)
    assert audit(cfg).ok

    # SIGKILL in the middle of a cycle, after ingest committed: the restart's first cycle catches up
    proc = _child(path, log)
    _wait_for(log, "follow: cycle 1 ", 2, proc)
    produce(kafka_bootstrap, "follow-b", c)
    _wait_for(log, "stage tokenize: start", 4, proc)
    proc.kill()
    proc.wait(60)
    restart = _config(root, kafka_bootstrap, "follow-b", interval=3600, min_records=10, poll=0.5, max_cycles=1)
    path.write_text(yaml.safe_dump(restart.model_dump(mode="json")))
    proc = _child(path, log)
    assert proc.wait(400) == 0, log.read_text()[-3000:]
    assert _raw_ids(cfg) == sorted(d["id"] for d in a + b + c)  # each record once
    result = audit(cfg)
    assert result.ok, [ch for ch in result.checks if not ch.ok]
