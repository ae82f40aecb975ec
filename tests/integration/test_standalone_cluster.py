"""A lake built from scratch on a real Spark standalone cluster: a master and two workers started with
`spark-class` from the pyspark install, each worker in a working directory of its own, the warehouse, scratch,
input and shards on S3 (moto), the catalog on a PostgreSQL server started by the test (Debian's package). Every stage (train-tokenizer included) is a
`spark-submit --master spark://...` of its job with the code shipped by `--py-files`; then `tokenmill audit`
passes and the loader reads the shards from S3.

The workers' environment holds AWS credentials (the provider chain) but no endpoint: the endpoint reaches the
tasks from the config only. The config file lives in its own folder and uses relative paths, which resolve
against that folder, not against the working directory of the driver or of any executor.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyspark
import pytest

from pipelines.storage import S3Options, s3_client

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "tiny" / "input"
BIN = Path(sys.executable).parent
SPARK_CLASS = Path(pyspark.__path__[0]) / "bin" / "spark-class"
PACKAGES = ("pipelines", "dedup", "sharding", "schemas")
JOBS = ("ingest", "curate", "train_tokenizer", "tokenize", "shard")


def _env(**extra: str) -> dict[str, str]:
    """This environment (moto's dummy AWS credentials, set by conftest) without any S3 endpoint or code path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "PYTHONPATH", "PYSPARK_GATEWAY_PORT")}
    return {**env, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Spark master exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the Spark master does not listen on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """(spark://127.0.0.1:PORT, master web UI port) of a master with two 1-core workers."""
    root = tmp_path_factory.mktemp("cluster")
    port, ui = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    logs = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        cwd = root / name
        cwd.mkdir()
        log = (cwd / "out.log").open("wb")
        logs.append(log)
        proc = subprocess.Popen([str(SPARK_CLASS), *args], cwd=cwd, env=_env(SPARK_WORKER_DIR=str(cwd / "work")),
                                stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    try:
        master = start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                       "--port", str(port), "--webui-port", str(ui))
        _wait_port(port, master, timeout=120)
        url = f"spark://127.0.0.1:{port}"
        for i in (1, 2):
            start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1",
                  "--memory", "2g", "--webui-port", str(free_port()), "--work-dir", str(root / f"worker{i}" / "work"))
        deadline = time.monotonic() + 120
        while len(_master_state(ui).get("workers", [])) < 2:
            if time.monotonic() > deadline:
                pytest.fail(f"workers did not register with the master; logs under {root}")
            time.sleep(1)
        yield url, ui
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


def _master_state(ui: int) -> dict:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except OSError:
        return {}


def _code_zip(path: Path) -> Path:
    """The packages as one zip for --py-files: executors import the code from it, not from any shared disk."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for pkg in PACKAGES:
            for f in sorted((REPO / pkg).rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".txt", ".json", ".bin"):
                    zf.write(f, f.relative_to(REPO).as_posix())
    return path


def test_jobs_build_a_lake_on_a_standalone_cluster(cluster: tuple[str, int], s3_endpoint: str, postgres: Any,
                                                   tmp_path: Path) -> None:
    url, ui = cluster
    s3 = s3_client(S3Options(endpoint=s3_endpoint))
    s3.create_bucket(Bucket="cluster")
    for f in sorted(TINY.iterdir()):
        s3.upload_file(str(f), "cluster", f"input/{f.name}")
    project = tmp_path / "project"
    project.mkdir()
    config = project / "params.yaml"
    config.write_text(f"""
lake:
  root: lake
  warehouse: s3://cluster/warehouse
  s3: {{endpoint: "{s3_endpoint}"}}
  catalog: {{type: sql, uri: "{postgres.uri('${env:TM_TEST_PG_PASSWORD}')}"}}
sources:
  - {{type: s3, uri: "s3://cluster/input/", endpoint: "{s3_endpoint}"}}
curate:
  filters: [{{name: length, min_words: 3}}]
  dedup: {{driver_max_bytes: 0}}  # the one-task plan: a task on a worker reads the curated step from S3
tokenize:
  tokenizer: lake/tokenizer.json
  train: {{vocab_size: 600}}
shard:
  output: s3://cluster/shards
  endpoint: "{s3_endpoint}"
  target_bytes: 65536
""")
    code = _code_zip(tmp_path / "tokenmill-code.zip")
    driver_env = _env(PYTHONPATH=str(REPO), TM_TEST_PG_PASSWORD=postgres.password)
    reports = {}
    for job in JOBS:
        proc = subprocess.run(
            [str(BIN / "spark-submit"), "--master", url, "--py-files", str(code), "--conf", "spark.executor.cores=1",
             "--conf", "spark.executor.memory=1g", "--conf", "spark.sql.shuffle.partitions=4",
             f"jobs/run_{job}.py", "--config", str(config)],
            cwd=REPO, env=driver_env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{job}: {proc.stderr[-4000:]}"
        # the job ran where spark-submit said, not on params.yaml's local[*] (Python logs reach stdout)
        assert f"master={url}" in proc.stdout
        assert postgres.password not in proc.stdout + proc.stderr  # the catalog URI is printed masked
        reports[job], _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index('{\n  "counts"'):])

    apps = _master_state(ui).get("completedapps", [])
    assert len(apps) == len(JOBS)
    assert all(app["cores"] >= 1 for app in apps)
    ingest, curate = reports["ingest"]["counts"], reports["curate"]["counts"]
    assert curate["raw_docs"] == ingest["raw_docs"] > 0
    assert curate["kept"] + curate["filtered"] + curate["duplicate"] == curate["raw_docs"]
    assert (curate["dedup_one_task"], curate["dedup_on_driver"]) == (1, 0)
    assert reports["tokenize"]["counts"]["docs"] == curate["kept"]
    assert reports["shard"]["counts"]["samples"] == curate["kept"]
    assert reports["shard"]["counts"]["shards"] >= 2
    # relative paths resolved against the config's folder; nothing landed in the repository or worker folders
    assert (project / "lake" / "tokenizer.json").exists() and not (project / "lake" / "catalog.db").exists()
    assert reports["train_tokenizer"]["outputs"]["tokenizer"] == str(project / "lake" / "tokenizer.json")
    # curate's scratch on S3 was cleaned up, folder markers included
    listed = s3.list_objects_v2(Bucket="cluster", Prefix="warehouse/_scratch")
    assert [o["Key"] for o in listed.get("Contents", [])] == []

    audit = subprocess.run([str(BIN / "tokenmill"), "audit", "--config", str(config)], cwd=tmp_path,
                           env=driver_env, capture_output=True, text=True, timeout=600)
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]

    from sharding import TokenLoader
    from sharding.loader.manifest import RemoteOptions

    manifest = reports["shard"]["outputs"]["manifest"]
    assert manifest.startswith("s3://cluster/shards/")
    loader = TokenLoader(manifest, seq_len=64, batch_size=4, seed=0, rank=0, world_size=1,
                         remote=RemoteOptions(endpoint=s3_endpoint, cache_dir=str(tmp_path / "cache")))
    batch = next(iter(loader))
    assert tuple(batch["input_ids"].shape) == (4, 64)


def _wheel(tmp_path: Path) -> Path:
    """`pip wheel --no-deps` of a copy of the project (the build leaves nothing in the repository), offline."""
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        src.mkdir(exist_ok=True)
        (src / name).write_bytes((REPO / name).read_bytes())
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("tokenmill-*.whl")
    return wheel


def _python_without_tokenmill(tmp_path: Path) -> Path:
    """A venv whose site-packages reaches this venv's third-party packages (a plain path entry, so their .pth
    files, the editable install of tokenmill among them, are not processed): the executors' Python."""
    env = tmp_path / "executor-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    site = next((env / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env / "bin" / "python"


def test_executors_import_the_wheel_shipped_with_the_job(cluster: tuple[str, int], tmp_path: Path) -> None:
    """The wheel from `pip wheel . --no-deps`, shipped by `--py-files` (as a .zip: Spark puts .zip/.egg/.jar
    files on the executors' sys.path, a .whl it only copies), is what the executors import the package from:
    their Python cannot import it otherwise."""
    url, _ = cluster
    wheel = _wheel(tmp_path)
    shipped = tmp_path / wheel.with_suffix(".zip").name
    shutil.copyfile(wheel, shipped)
    executor_python = _python_without_tokenmill(tmp_path)
    alone = subprocess.run([str(executor_python), "-c", "import pipelines"], env=_env(), capture_output=True,
                           cwd=tmp_path, timeout=120)
    assert alone.returncode != 0, "the executors' Python must not find tokenmill by itself"
    deps = subprocess.run([str(executor_python), "-c", "import pyarrow, pyiceberg, numba"], env=_env(),
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert deps.returncode == 0, deps.stderr[-2000:]
    config = tmp_path / "params.yaml"
    config.write_text(f"""
lake: {{root: lake}}
sources: [{{type: local, path: "{TINY}"}}]
""")
    proc = subprocess.run(
        [str(BIN / "spark-submit"), "--master", url, "--py-files", str(shipped),
         "--conf", f"spark.pyspark.python={executor_python}", "--conf", f"spark.pyspark.driver.python={sys.executable}",
         "--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=1g",
         str(REPO / "tests" / "integration" / "shipped_probe.py"), str(config)],
        cwd=tmp_path, env=_env(PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    probe = json.loads(proc.stdout[proc.stdout.index("PROBE ") + 6:].splitlines()[0])
    assert probe["raw_docs"] > 0
    assert probe["origins"]
    for origin in probe["origins"]:
        module, python = origin.split("|")
        assert python == str(executor_python)
        assert f"{shipped.name}/pipelines/__init__.py" in module, module
