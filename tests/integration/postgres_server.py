"""A throwaway PostgreSQL server from Debian's `postgresql` package, for the catalog tests.

`initdb` in a fresh folder, `pg_ctl start` on a free 127.0.0.1 port (its socket in the same folder), password
(SCRAM) authentication over TCP, `pg_ctl stop -m immediate` and the folder removed at the end. PostgreSQL
refuses to run as root: under root the server runs as the `postgres` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "install Debian's postgresql package (apt-get install postgresql)"


def server_bin(name: str) -> str:
    """Path of a PostgreSQL server program: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not on this machine: {INSTALL_HINT}")
    return found


def _as_server_user() -> tuple[list[str], int | None]:
    """(command prefix, uid to own the data folder): empty and None unless we are root."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(f"running as root and there is no 'postgres' user to run the server: {INSTALL_HINT}"
                           ) from None
    return ["runuser", "-u", "postgres", "--"], user.pw_uid


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str
    database: str

    def uri(self, password: str | None = None) -> str:
        """SQLAlchemy URI (psycopg2); `password` replaces the real one, e.g. with a `${env:NAME}` reference."""
        return (f"postgresql+psycopg2://{self.user}:{password or self.password}@127.0.0.1:{self.port}"
                f"/{self.database}")


@contextmanager
def postgres_server(port: int, *, user: str = "tm", password: str = "tm-catalog-pw", database: str = "catalog"
                    ) -> Iterator[Postgres]:
    """Run a server on 127.0.0.1:`port` with `database` owned by `user` (password authentication)."""
    initdb, pg_ctl = server_bin("initdb"), server_bin("pg_ctl")
    prefix, uid = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="tm-pg-"))
    data = folder / "data"
    (folder / "pw").write_text(password + "\n")
    if uid is not None:
        os.chown(folder, uid, -1)
        os.chown(folder / "pw", uid, -1)

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True,
                       env={**os.environ, "PGPASSWORD": password})

    try:
        run(initdb, "-D", str(data), "-U", user, f"--pwfile={folder / 'pw'}", "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256", "-E", "UTF8", "--no-sync")
        run(pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
            "-o", f"-h 127.0.0.1 -p {port} -k {folder} -F", "start")
        try:
            run(server_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database)
            yield Postgres(port=port, user=user, password=password, database=database)
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    except subprocess.CalledProcessError as exc:
        log = folder / "server.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"{exc.cmd[len(prefix)]} failed ({exc.returncode}): {exc.stderr.strip()}\n{tail}") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
