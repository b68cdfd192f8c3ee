"""The SQLite connection under the store: pragmas, migrations, transactions, checkpoints.

Concurrency model: every thread gets its own connection (SQLite connections are not
meant to be shared: a transaction belongs to a connection, so threads sharing one also
share, and break, each other's transactions). Readers never block in WAL mode; a writer
takes the write lock with ``BEGIN IMMEDIATE`` and, when another connection or process
holds it, waits (SQLite's busy timeout) and retries with backoff instead of failing.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from pgen.context.base import StoreError
from pgen.context.sqlite.schema import SCHEMA_VERSION, apply_migrations

BUSY_TIMEOUT_S = 30.0  # SQLite waits this long for a lock before reporting "busy"
WRITE_WAIT_S = 600.0  # a writer retries BEGIN IMMEDIATE this long in all, then fails


def make_private_dir(path: Path) -> None:
    """Create ``path`` and missing parents readable by the owner only (0700). Folders
    that already exist keep their mode: they may be the user's own (a home, a cwd)."""
    missing = []
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            folder.mkdir(mode=0o700)
    if not path.is_dir():
        raise StoreError(f"{path}: not a folder")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error)
    return "locked" in text or "busy" in text


class Database:
    """A SQLite file at the current schema version, with one-transaction-per-batch writes.

    The parts of the store (records, derived data, artifacts) share one ``Database``;
    other files with the same discipline (the jobs file) subclass it and override
    ``_migrate``."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = BUSY_TIMEOUT_S,
        write_wait: float = WRITE_WAIT_S,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.write_wait = write_wait
        make_private_dir(self.path.parent)
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path}: not a regular file")
        # Created 0600 before SQLite opens it; SQLite gives -wal and -shm the same mode.
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        self._local = threading.local()
        # Every thread's connection (by thread id), so close() can close them all.
        self._connections: dict[int, sqlite3.Connection] = {}
        self._guard = threading.Lock()
        self._closed = False
        self._migrate()

    # -- connections ------------------------------------------------------------------
    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self._closed:
                raise StoreError(f"{self.path}: the store is closed")
            connection = self._connect()
            self._local.connection = connection
        return connection

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
        # check_same_thread=False only so that close() may close it from another thread;
        # it is used by the thread that opened it and no other.
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        connection.row_factory = sqlite3.Row
        # Switching a new file to WAL needs a lock: many processes opening it at once wait.
        self._retry(lambda: connection.execute("PRAGMA journal_mode=WAL"))
        connection.execute("PRAGMA foreign_keys=ON")
        # NORMAL in WAL mode: a commit survives a crash of the process; a power cut may
        # lose the last commits but never corrupts the file (docs/reliability.md).
        connection.execute("PRAGMA synchronous=NORMAL")
        # Deleted content is overwritten with zeros, so a deleted user's text does not
        # linger in free pages of the file. A per-connection setting: set on every one.
        connection.execute("PRAGMA secure_delete=ON")
        with self._guard:
            # Threads that ended left their connections: close them (a server's short-
            # lived threads would otherwise pile up open files).
            alive = {thread.ident for thread in threading.enumerate()}
            for ident in [i for i in self._connections if i not in alive]:
                self._connections.pop(ident).close()
            previous = self._connections.pop(threading.get_ident(), None)
            if previous is not None:  # an ended thread's id, reused
                previous.close()
            self._connections[threading.get_ident()] = connection
        return connection

    def _retry(self, attempt: Any) -> Any:
        """Run ``attempt()`` until it gets its lock, waiting with jittered backoff up to
        ``write_wait`` seconds (on top of SQLite's own busy timeout per attempt)."""
        deadline = time.monotonic() + self.write_wait
        pause = 0.01
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as error:
                if not _is_busy(error) or time.monotonic() > deadline:
                    if _is_busy(error):
                        raise StoreError(
                            f"{self.path}: still locked by another writer after "
                            f"{self.write_wait:.0f} s"
                        ) from error
                    raise
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 1.0)

    # -- plumbing ---------------------------------------------------------------------
    @property
    def location(self) -> str:
        return str(self.path)

    def close(self) -> None:
        with self._guard:
            self._closed = True
            connections = list(self._connections.values())
            self._connections = {}
        for connection in connections:
            connection.close()
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        if self.schema_version == SCHEMA_VERSION:
            return  # the common case, without taking the write lock
        # Read the version again under the write lock: of many processes opening a new
        # file at once, one migrates and the others find the work done.
        with self.transaction() as db:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {current}, newer than this pgen "
                    f"({SCHEMA_VERSION}); upgrade pgen"
                )
            apply_migrations(db, current, SCHEMA_VERSION)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit on this thread's connection: everything inside commits together
        or not at all. Nested calls in the same thread join the outer transaction; other
        threads have their own connections and wait for the write lock."""
        db = self._db
        if db.in_transaction:  # nested in this thread: the outer transaction decides
            yield db
            return
        self._retry(lambda: db.execute("BEGIN IMMEDIATE"))
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        return self._db.execute(sql, params).fetchall()

    def _rows_in(self, sql: str, keys: Iterable[str], *params: Any) -> list[sqlite3.Row]:
        """``sql`` ends with a column name; rows whose column is one of ``keys``."""
        keys = list(keys)
        rows: list[sqlite3.Row] = []
        for start in range(0, len(keys), 500):  # stay under SQLite's parameter limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows += self._rows(f"{sql} IN ({marks})", *params, *chunk)
        return rows

    # The names the store's parts call (the parts share one Database).
    def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        return self._rows(sql, *params)

    def rows_in(self, sql: str, keys: Iterable[str], *params: Any) -> list[sqlite3.Row]:
        return self._rows_in(sql, keys, *params)

    def integrity_problems(self) -> list[str]:
        """What SQLite's full integrity check finds wrong with the file ([] when sound)."""
        rows = [row[0] for row in self._db.execute("PRAGMA integrity_check").fetchall()]
        return [] if rows == ["ok"] else rows

    def checkpoint(self, wait: float = 10.0) -> bool:
        """Fold the WAL into the (zeroed) main file and truncate it; True when that
        completed. A reader holding an old snapshot (another thread or process) blocks
        it: retry for up to ``wait`` seconds, then report False (the next delete-user,
        sweep or last close of the store checkpoints again)."""
        db = self._db
        deadline = time.monotonic() + wait
        db.execute("PRAGMA busy_timeout=100")  # short waits here, so the deadline holds
        try:
            while True:
                busy, _log, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        finally:
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")

    def scrub(self, wait: float = 10.0) -> bool:
        """Leave no byte of deleted rows anywhere in the file: rebuild it (VACUUM), then
        fold and truncate the WAL (``checkpoint``); True when the WAL was truncated.

        ``secure_delete`` zeroes a row where it is deleted, but not the copies SQLite
        leaves behind when it moves rows between pages: rebalancing a b-tree page
        (``rebuildPage``, on inserts into the middle of an index, or on deletes that
        underflow a page) packs the cells it keeps at the end of the page and leaves the
        old bytes in the unallocated gap before them. Those stale copies of a user's rows
        (an interaction in the primary-key index) outlive the user's delete; VACUUM
        writes every page afresh, and the old pages go with the file."""
        db = self._db
        self._retry(lambda: db.execute("VACUUM"))
        return self.checkpoint(wait)
