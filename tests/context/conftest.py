"""The store contract suite: every store backend runs every test here.

A backend is a small class that opens a store in a home folder and answers the few
questions only it can (the raw bytes of every file it keeps, a store built at an older
schema version). Tests take the ``store`` fixture (or ``backend`` and ``home``) and use
only the store protocols, so adding a backend is one class and one entry in ``BACKENDS``
(in the style of diffusers' ``PipelineTesterMixin``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from pgen.context.base import ContextStore
from pgen.context.sqlite.schema import apply_migrations
from pgen.context.sqlite.store import SQLiteStore


class Backend(Protocol):
    name: str

    def open(self, home: Path) -> ContextStore: ...

    def cli_args(self, home: Path) -> list[str]:
        """``pgen`` options that point the command at this backend's store in ``home``."""
        ...

    def raw_bytes(self, home: Path) -> dict[Path, bytes]:
        """Every file the backend keeps for a store in ``home`` (database files included),
        read as bytes: what forgetting must leave without a trace of a user."""
        ...

    def old_store(self, home: Path, outputs: list[dict[str, object]]) -> int:
        """Build a store at the schema version before outputs had a modality (5), holding
        one user ``old`` with these outputs (output_id, provenance); returns the version."""
        ...


class SQLiteBackend:
    name = "sqlite"

    def open(self, home: Path) -> ContextStore:
        return SQLiteStore(home / "pgen.sqlite")

    def cli_args(self, home: Path) -> list[str]:
        return ["--home", str(home)]

    def raw_bytes(self, home: Path) -> dict[Path, bytes]:
        return {path: path.read_bytes() for path in sorted(home.rglob("*")) if path.is_file()}

    def old_store(self, home: Path, outputs: list[dict[str, object]]) -> int:
        home.mkdir(parents=True, exist_ok=True)
        version = 5
        with sqlite3.connect(home / "pgen.sqlite", isolation_level=None) as db:
            db.execute("BEGIN")
            apply_migrations(db, 0, version)
            db.execute("INSERT INTO users(user_id) VALUES ('old')")
            for output in outputs:
                db.execute(
                    "INSERT INTO outputs(output_id, user_id, instruction, strategy, text, "
                    "provenance, created) VALUES (?, 'old', 'i', 's', 't', ?, ?)",
                    (output["output_id"], json.dumps(output["provenance"]), output["output_id"]),
                )
            db.execute("COMMIT")
        return version


class PostgresBackend:
    """A database of the session's real server (tests/postgres_server.py) per home; the
    store's artifacts in ``<home>/artifacts``. Its raw bytes are the database's table and
    index files (``base/<oid>``, after a CHECKPOINT) and the home's files; the WAL is
    not among them (docs/privacy.md says what it holds, tests/context/test_postgres_privacy.py
    measures it)."""

    name = "postgres"

    def __init__(self) -> None:
        self.databases: dict[Path, str] = {}

    def url(self, home: Path) -> str:
        from tests.postgres_server import shared_server

        server = shared_server()
        if home not in self.databases:
            self.databases[home] = server.create_database()
        return server.url(self.databases[home])

    def open(self, home: Path) -> ContextStore:
        from pgen.context.postgres import PostgresStore

        return PostgresStore(self.url(home), artifacts_root=home / "artifacts")

    def cli_args(self, home: Path) -> list[str]:
        return ["--home", str(home), "--store", self.url(home)]

    def raw_bytes(self, home: Path) -> dict[Path, bytes]:
        from tests.postgres_server import shared_server

        server = shared_server()
        files = server.files(server.database_folder(self.databases[home]))
        return files | {path: path.read_bytes() for path in home.rglob("*") if path.is_file()}

    def old_store(self, home: Path, outputs: list[dict[str, object]]) -> int:
        import psycopg

        from pgen.context.postgres.schema import apply_migrations

        version = 5
        with psycopg.connect(self.url(home)) as db:  # one transaction, committed on exit
            apply_migrations(db, "pgen", 0, version)  # type: ignore[arg-type]
            db.execute("INSERT INTO users(user_id) VALUES ('old')")
            for output in outputs:
                db.execute(
                    "INSERT INTO outputs(output_id, user_id, instruction, strategy, text, "
                    "provenance, created) VALUES (%s, 'old', 'i', 's', 't', %s, %s)",
                    (output["output_id"], json.dumps(output["provenance"]), output["output_id"]),
                )
        return version


BACKENDS: dict[str, Backend] = {"sqlite": SQLiteBackend(), "postgres": PostgresBackend()}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def store(backend: Backend, home: Path) -> Iterator[ContextStore]:
    opened = backend.open(home)
    try:
        yield opened
    finally:
        opened.close()


def traces(backend: Backend, home: Path, needle: str) -> list[str]:
    """Files under ``home`` whose bytes, or whose names, hold ``needle``."""
    found = [str(path) for path, data in backend.raw_bytes(home).items() if needle.encode() in data]
    found += [str(path) for path in home.rglob(f"*{needle}*")]
    return found
