"""What a Postgres server still holds of a user after delete-user, measured on a cluster
of its own (docs/privacy.md states these results).

The table files hold nothing (the contract suite checks that on every backend). The WAL
does: every insert was logged, and the log is not rewritten. A finished segment is
removed or recycled at a checkpoint; recycled (the default, ``wal_recycle = on``) it is
renamed for reuse and keeps its old bytes until new WAL overwrites it. With
``wal_recycle = off``, a WAL switch and a checkpoint after the delete remove the file.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgen.context.postgres import PostgresStore
from tests.context.samples import fill
from tests.postgres_server import PostgresServer


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A fresh cluster: its WAL holds only what these tests write."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def wal_files_holding(server: PostgresServer, needle: str) -> list[str]:
    files = server.files(server.data / "pg_wal")
    return [path.name for path, data in files.items() if needle.encode() in data]


def switch_and_checkpoint(server: PostgresServer) -> None:
    with server.admin() as db:
        db.execute("SELECT pg_switch_wal()")
        db.execute("CHECKPOINT")


def forget(server: PostgresServer, home: Path, user: str) -> None:
    database = server.create_database()
    with PostgresStore(server.url(database), artifacts_root=home) as store:
        fill(store, "kept")
        fill(store, user)
        store.delete_user(user)
        files = server.files(server.database_folder(database))
        assert not any(user.encode() in data for data in files.values())  # tables: clean


def test_the_wal_keeps_a_deleted_user_until_its_segment_is_overwritten(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    forget(own_server, tmp_path, "canarywal1a")
    assert wal_files_holding(own_server, "canarywal1a")  # right after delete-user: in the WAL
    switch_and_checkpoint(own_server)
    # Default settings: the segment is recycled (renamed for reuse), its bytes intact.
    assert wal_files_holding(own_server, "canarywal1a")


def test_without_wal_recycling_a_switch_and_checkpoint_remove_it(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    with own_server.admin() as db:
        db.execute("ALTER SYSTEM SET wal_recycle = off")
        db.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 60  # the reload is asynchronous: wait until it shows
        while db.execute("SHOW wal_recycle").fetchone() != ("off",):
            assert time.monotonic() < deadline, "wal_recycle=off did not take effect"
            time.sleep(0.05)
            db.execute("SELECT 1")
    forget(own_server, tmp_path, "canarywal2b")
    assert wal_files_holding(own_server, "canarywal2b")
    switch_and_checkpoint(own_server)
    assert wal_files_holding(own_server, "canarywal2b") == []
