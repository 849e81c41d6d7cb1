"""A private PostgreSQL cluster for the tests of both tiers that need a real one (a pytest plugin).

Debian's server binaries (``bash .ci/scaleout.sh`` installs them), ``initdb`` into a temp dir
owned by the ``postgres`` system user, listening on 127.0.0.1 and a private Unix socket only.
One cluster per test session: each module takes its own database (``PgCluster.database``).
Connections over TCP use a password (scram), like a real deploy; the tests' superuser comes
in over the socket without one. ``fsync=off`` unless ``durable``: test data need not survive power loss.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

PASSWORD = "vp-test-" + uuid.uuid4().hex[:12]  # the role the stores log in as: vp
USER = "vp"


def bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries: run 'bash .ci/scaleout.sh' (as root)")
    return Path(found[-1]).parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PgCluster:
    def __init__(self, top: Path, durable: bool = False) -> None:
        """``durable``: fsync on, as a production server (benchmarks); tests need no crash safety."""
        self.durable = durable
        self.bin = bin_dir()
        self.top = top
        self.data = top / "data"
        self.sock = top / "sock"
        self.log = top / "postgres.log"
        self.port = free_port()
        self.password_file = top / "password"

    def _as_postgres(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # The server refuses to run as root; runuser keeps it the postgres system user's.
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv], check=False, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode:
            raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        return done

    def init(self) -> None:
        self.top.mkdir(parents=True, exist_ok=True)
        os.chmod(self.top, 0o755)
        for d in (self.sock, self.data):
            d.mkdir()
            shutil.chown(d, "postgres", "postgres")
        self.log.touch()
        shutil.chown(self.log, "postgres", "postgres")
        self.password_file.write_text(PASSWORD + "\n")
        os.chmod(self.password_file, 0o644)  # the service user reads it in the e2e tests
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        self.start()
        self.psql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}' CREATEDB")

    def start(self) -> None:
        fast = "" if self.durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        opts = f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 {fast}-c max_connections=200"
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w",
                          "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "status", check=False).returncode == 0

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self._as_postgres(
            str(self.bin / "psql"), "-h", str(self.sock), "-p", str(self.port), "-d", db, "-XAtq", "-v",
            "ON_ERROR_STOP=1", "-c", sql,
        ).stdout  # fmt: skip

    def database(self, name: str | None = None) -> str:
        """A new, empty database owned by the stores' role; returns its DSN (no password)."""
        name = name or "g_" + uuid.uuid4().hex[:10]
        self.psql(f"CREATE DATABASE {name} OWNER {USER}")
        return self.dsn(name)

    def dsn(self, name: str) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={name} user={USER}"

    def wait_connections(self, db: str, at_least: int, timeout: float = 60.0) -> int:
        """Block until ``db`` has ``at_least`` client connections (listeners came back)."""
        deadline = time.monotonic() + timeout
        while True:
            n = int(self.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname='{db}'").strip() or 0)
            if n >= at_least or time.monotonic() > deadline:
                return n
            time.sleep(0.1)

    def destroy(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.top, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PgCluster(Path(tempfile.mkdtemp(prefix="vp-pg-")))
    cluster.init()
    try:
        yield cluster
    finally:
        cluster.destroy()
