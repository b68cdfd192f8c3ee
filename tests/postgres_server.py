"""A real PostgreSQL server for the tests: Debian's binaries, a fresh cluster in a temporary
folder, on a free loopback port, started once per test session and stopped at its end.

``shared_server()`` starts it on first use (the contract suite's Postgres backend and the
service tests ask for it); ``tests/conftest.py`` stops it when the session ends. Run as
root (CI, ``make test``), ``initdb`` refuses to run, so every server command runs as the
unprivileged ``postgres`` user (``runuser``), in a folder that user owns. No skip: without
the binaries, a test that needs the server fails and says what to install.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg

SUPERUSER = "pgen"  # the cluster's superuser (trust auth, loopback only: a test server)
START_DEADLINE_S = 120.0  # against a hang only: the machine is loaded, CI too


def find_bindir() -> Path:
    """The newest Debian PostgreSQL ``bin`` folder (``$PGEN_PG_BINDIR`` overrides)."""
    override = os.environ.get("PGEN_PG_BINDIR")
    candidates = [override] if override else glob.glob("/usr/lib/postgresql/*/bin")
    found = [Path(c) for c in candidates if (Path(c) / "pg_ctl").is_file()]
    if not found:
        raise RuntimeError(
            "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/pg_ctl): install "
            "Debian's postgresql package (`make install` does: apt-get install postgresql)"
        )
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One cluster: ``initdb`` in a temporary folder, ``pg_ctl start`` on loopback."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.fsync = fsync  # off for tests (a throwaway cluster); on for benchmarks
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="pgen-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        self._databases = 0
        self._lock = threading.Lock()

    def _run(self, *command: str) -> None:
        argv = [str(self.bindir / command[0]), *command[1:]]
        if self._as_root:  # initdb and postgres refuse root: run them as `postgres`
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=START_DEADLINE_S)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-2000:]
            raise RuntimeError(f"{command[0]} failed ({result.returncode}): {tail}")

    def start(self) -> None:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "start")
        deadline = time.monotonic() + START_DEADLINE_S
        while True:  # pg_ctl waits already; connect until it accepts, bounded
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=5):
                    return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres refuses connections: see {self.log}") from error
                time.sleep(0.1)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection:
        """A superuser connection in autocommit (CREATE DATABASE, CHECKPOINT, VACUUM)."""
        return psycopg.connect(self.url(database), autocommit=True)

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database: one per test, so tests never see each other's rows."""
        with self._lock:
            self._databases += 1
            name = f"{prefix}_{os.getpid()}_{self._databases}"
        with self.admin() as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return name

    def database_folder(self, database: str) -> Path:
        """The folder of the database's table and index files (``base/<oid>``)."""
        with self.admin() as db:
            row = db.execute("SELECT oid FROM pg_database WHERE datname=%s", (database,)).fetchone()
        assert row is not None, database
        return self.data / "base" / str(row[0])

    def files(self, folder: Path) -> dict[Path, bytes]:
        """The bytes of every file under ``folder`` after a CHECKPOINT (so what the server
        holds in memory is on disk as well)."""
        with self.admin() as db:
            db.execute("CHECKPOINT")
        return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


_shared: PostgresServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> PostgresServer:
    """The session's server, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            server = PostgresServer()
            try:
                server.start()
            except BaseException:
                server.stop()
                raise
            _shared = server
        return _shared


def stop_shared_server() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None
