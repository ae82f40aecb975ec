"""The same corpus through `local[2]` and through a 2-worker standalone cluster with an S3 warehouse.

    .venv/bin/python -m benchmarks.cluster [--mb 32,64] [--modes local,cluster] [--vocab 4096]

For each corpus size (--mb, MB of UTF-8 text), every stage runs as its spark-submit job (`jobs/run_<stage>.py`:
ingest, curate, train_tokenizer, tokenize, shard) in each mode:

- local: `spark-submit --master local[2]`, lake (SQLite catalog, warehouse, shards) on the local disk, input
  read from a local folder;
- cluster: a master and two 1-core workers started here with `spark-class` from the pyspark install, each in a
  working directory of its own, `spark-submit --master spark://...` with the code shipped by `--py-files`;
  input, warehouse, scratch and shards on moto's S3 server (127.0.0.1), the SQLite catalog on the driver.

Printed per stage and mode: wall seconds; CPU seconds of the whole process tree (the driver: spark-submit's
JVM, the Python driver and, in local mode, its Python workers, from this process's rusage of its children or,
when larger, from the driver's process tree sampled every 0.2 s, reaped children included;
in cluster mode also the master and the workers with their executors and Python workers, from their
process CPU times including reaped children); the driver's peak RSS, its Python process and its JVM
separately (sampled every 0.2 s). Then the cluster/local ratios and the driver's peak RSS at each size.

Corpus: documents of 40-400 words drawn at random (seeded) from the words of the bundled sample's texts,
so nearly every document is unique and survives dedup; ~3% are planted exact copies. One run per figure:
the machine is shared, say how loaded it was (`uptime`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

from benchmarks.tokenize_stage import sample_texts  # noqa: E402

JOBS = ("ingest", "curate", "train_tokenizer", "tokenize", "shard")
BIN = Path(sys.executable).parent
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
       "AWS_DEFAULT_REGION": "us-east-1"}
PACKAGES = ("pipelines", "dedup", "sharding", "schemas")
FILES = 8


def write_corpus(folder: Path, mb: float, seed: int = 0) -> tuple[int, int]:
    """JSONL files of about `mb` MB under `folder`; returns (documents, bytes)."""
    words = np.array(re.findall(r"\S+", " ".join(sample_texts())))
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    outs = [(folder / f"part-{i:02d}.jsonl").open("w", encoding="utf-8") for i in range(FILES)]
    n = size = 0
    last = ""
    while size < mb * 1e6:
        text = last if n and rng.random() < 0.03 else " ".join(words[rng.integers(0, len(words),
                                                                                 int(rng.integers(40, 400)))])
        line = json.dumps({"id": f"d{n}", "text": text}) + "\n"
        outs[n % FILES].write(line)
        size += len(line.encode())
        n, last = n + 1, text
    for f in outs:
        f.close()
    return n, size


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "PYTHONPATH", "PYSPARK_GATEWAY_PORT")}
    return {**env, **AWS, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, **extra}


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def standalone(work: Path) -> Iterator[tuple[str, list[psutil.Process]]]:
    """A master and two 1-core, 2 GB workers, each in a folder of its own: (master URL, their processes)."""
    import pyspark

    spark_class = Path(pyspark.__path__[0]) / "bin" / "spark-class"
    port, ui = _free_port(), _free_port()
    url = f"spark://127.0.0.1:{port}"
    roles = [("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                         "--webui-port", str(ui)])]
    roles += [(f"worker{i}", ["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1",
                              "--memory", "2g", "--webui-port", str(_free_port()),
                              "--work-dir", str(work / f"worker{i}" / "work")]) for i in (1, 2)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in roles:
            (work / name).mkdir(parents=True)
            procs.append(subprocess.Popen([str(spark_class), *args], cwd=work / name, env=_env(),
                                          stdout=(work / name / "out.log").open("wb"), stderr=subprocess.STDOUT))
            while name == "master" and not _listening(port):
                time.sleep(0.5)
        while _registered_workers(ui) < 2:
            time.sleep(1)
        yield url, [psutil.Process(p.pid) for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def _registered_workers(ui: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as resp:
            return len(json.loads(resp.read()).get("workers", []))
    except OSError:
        return 0


def tree_cpu(procs: list[psutil.Process]) -> float:
    """CPU seconds of these long-lived processes: their own, their reaped children's and their live
    descendants'."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
            for child in p.children(recursive=True):
                c = child.cpu_times()
                total += c.user + c.system
        except psutil.NoSuchProcess:
            continue
    return total


@dataclass
class Peak:
    """Peak RSS of the Python driver and of the driver JVM below a spark-submit process."""

    python: int = 0
    jvm: int = 0
    cpu: dict[int, float] = field(default_factory=dict)  # last CPU seconds seen per process, its reaped children too
    stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, pid: int) -> threading.Thread:
        def run() -> None:
            root = psutil.Process(pid)
            while not self.stop.is_set():
                try:
                    for p in [root, *root.children(recursive=True)]:
                        t = p.cpu_times()
                        self.cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
                        rss, name = p.memory_info().rss, p.name()
                        if "java" in name:
                            self.jvm = max(self.jvm, rss)
                        elif "python" in name and any("jobs/" in a for a in p.cmdline()):
                            self.python = max(self.python, rss)
                except psutil.Error:
                    pass
                self.stop.wait(0.2)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def submit(job: str, master: str, config: Path, extra: list[str], cluster: list[psutil.Process]
           ) -> dict[str, Any]:
    """One spark-submit job; its stdout and stderr kept next to the config (`<job>.out`, `<job>.err`)."""
    cmd = [str(BIN / "spark-submit"), "--master", master, "--driver-memory", "2g", *extra,
           f"jobs/run_{job}.py", "--config", str(config)]
    cpu0, cluster0, start = children_cpu(), tree_cpu(cluster), time.perf_counter()
    out_path, err_path = config.parent / f"{job}.out", config.parent / f"{job}.err"
    with out_path.open("w") as out_fh, err_path.open("w") as err_fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(PYTHONPATH=str(ROOT)), stdout=out_fh, stderr=err_fh)
        peak = Peak()
        watcher = peak.watch(proc.pid)
        proc.wait()
        peak.stop.set()
        watcher.join()
    wall = time.perf_counter() - start
    out = out_path.read_text(errors="replace")
    if proc.returncode != 0:
        errors = [line for line in err_path.read_text(errors="replace").splitlines()
                  if "Error" in line or "Exception" in line or line.startswith(("Traceback", "  File", "tokenmill"))]
        raise SystemExit(f"{job} on {master} failed ({proc.returncode}); output in {out_path} and {err_path}:\n"
                         + "\n".join(errors[-40:]) + "\n" + out[-2000:])
    report, _ = json.JSONDecoder().raw_decode(out[out.index('{\n  "counts"'):])
    # rusage misses descendants their parent never reaped (local mode's Python workers under the JVM): take
    # the larger of it and the sampled process tree
    driver_cpu = max(children_cpu() - cpu0, sum(peak.cpu.values()))
    result = {"wall": wall, "cpu": driver_cpu + tree_cpu(cluster) - cluster0,
              "py_rss": peak.python, "jvm_rss": peak.jvm, "counts": report["counts"]}
    print(f"  {job} on {master}: wall {wall:.1f} s, cpu {result['cpu']:.1f} s, driver peak RSS python "
          f"{_mb(peak.python).strip()} MB / JVM {_mb(peak.jvm).strip()} MB; load {os.getloadavg()[0]:.1f}", flush=True)
    return result


def _config(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def local_config(work: Path, corpus: Path, vocab: int) -> Path:
    return _config(work / "local" / "params.yaml", f"""
lake: {{root: lake}}
sources: [{{type: local, path: "{corpus}"}}]
tokenize: {{tokenizer: lake/tokenizer.json, train: {{vocab_size: {vocab}}}}}
shard: {{target_bytes: 16777216}}
""")


def cluster_config(work: Path, endpoint: str, bucket: str, vocab: int) -> Path:
    return _config(work / "cluster" / "params.yaml", f"""
lake:
  root: lake
  warehouse: s3://{bucket}/warehouse
  s3: {{endpoint: "{endpoint}"}}
sources: [{{type: s3, uri: "s3://{bucket}/input/", endpoint: "{endpoint}"}}]
tokenize: {{tokenizer: lake/tokenizer.json, train: {{vocab_size: {vocab}}}}}
shard: {{output: "s3://{bucket}/shards", endpoint: "{endpoint}", target_bytes: 16777216}}
""")


def code_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for pkg in PACKAGES:
            for f in sorted((ROOT / pkg).rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts:
                    zf.write(f, f.relative_to(ROOT).as_posix())
    return path


def run_size(mb: float, modes: list[str], work: Path, vocab: int, endpoint: str | None, master: str | None,
             cluster: list[psutil.Process]) -> dict[str, dict[str, dict[str, Any]]]:
    corpus = work / "corpus"
    n, nbytes = write_corpus(corpus, mb)
    print(f"\n== {nbytes / 1e6:.0f} MB corpus: {n} documents in {FILES} JSONL files ==", flush=True)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    if "local" in modes:
        config = local_config(work, corpus, vocab)
        results["local"] = {job: submit(job, "local[2]", config, [], []) for job in JOBS}
    if "cluster" in modes and endpoint and master:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, **{k.lower(): v for k, v in AWS.items()
                                                          if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
        bucket = f"bench-{int(mb)}-{int(time.time())}"
        s3.create_bucket(Bucket=bucket)
        for f in sorted(corpus.iterdir()):
            s3.upload_file(str(f), bucket, f"input/{f.name}")
        config = cluster_config(work, endpoint, bucket, vocab)
        extra = ["--py-files", str(code_zip(work / "tokenmill-code.zip")), "--conf", "spark.executor.cores=1",
                 "--conf", "spark.executor.memory=1500m"]
        results["cluster"] = {job: submit(job, master, config, extra, cluster) for job in JOBS}
    _print_size(results)
    return results


def _mb(n: int) -> str:
    return f"{n / 2**20:7.0f}"


def _print_size(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    modes = list(results)
    head = "".join(f" | {m:>7} wall s  cpu s  py MB jvm MB" for m in modes)
    print(f"{'stage':<16}{head}" + ("  | cluster/local wall  cpu" if len(modes) == 2 else ""))
    for job in JOBS:
        cells = "".join(f" | {r[job]['wall']:14.1f} {r[job]['cpu']:6.1f} {_mb(r[job]['py_rss'])}"
                        f"{_mb(r[job]['jvm_rss'])}" for r in results.values())
        ratio = ""
        if len(modes) == 2:
            a, b = results["cluster"][job], results["local"][job]
            ratio = f"  | {a['wall'] / b['wall']:18.2f} {a['cpu'] / b['cpu']:4.2f}"
        print(f"{job:<16}{cells}{ratio}")
    for mode, r in results.items():
        counts = r["curate"]["counts"]
        print(f"{mode}: total wall {sum(x['wall'] for x in r.values()):.0f} s, cpu {sum(x['cpu'] for x in r.values()):.0f}"
              f" s; raw_docs {counts.get('raw_docs')}, kept {counts.get('kept')}, duplicate {counts.get('duplicate')}, "
              f"shards {r['shard']['counts'].get('shards')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", default="32,64", help="corpus sizes in MB, comma-separated")
    ap.add_argument("--modes", default="local,cluster")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (lakes, job logs) afterwards")
    args = ap.parse_args()
    sizes = [float(x) for x in args.mb.split(",") if x]
    modes = [m for m in args.modes.split(",") if m]
    base = Path(tempfile.mkdtemp(prefix="tm-bench-cluster-"))
    print(f"load average at start: {os.getloadavg()}; {os.cpu_count()} cores")
    all_results: dict[float, dict[str, dict[str, dict[str, Any]]]] = {}
    try:
        if "cluster" in modes:
            import logging

            import moto.server

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request
            port = _free_port()
            server = moto.server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            with standalone(base / "spark") as (master, cluster):
                for mb in sizes:
                    all_results[mb] = run_size(mb, modes, base / f"{mb:g}mb", args.vocab,
                                               f"http://127.0.0.1:{port}", master, cluster)
            server.stop()
        else:
            for mb in sizes:
                all_results[mb] = run_size(mb, modes, base / f"{mb:g}mb", args.vocab, None, None, [])
    finally:
        if args.keep:
            print(f"work folder kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print("\ndriver peak RSS over the five jobs (Python driver / driver JVM), MB:")
    for mode in modes:
        cells = [f"{mb:g} MB corpus: {_mb(max(r['py_rss'] for r in res[mode].values())).strip()} / "
                 f"{_mb(max(r['jvm_rss'] for r in res[mode].values())).strip()}"
                 for mb, res in all_results.items() if mode in res]
        print(f"  {mode}: " + "; ".join(cells))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
