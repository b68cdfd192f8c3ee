"""The PostgreSQL connection under the store: a pool, the store's schema, migrations,
transactions, and the VACUUM that forgetting needs.

Concurrency model: connections come from a ``psycopg_pool.ConnectionPool``. A transaction
holds one connection for its thread (nested ``transaction()`` calls in that thread join
it, as with SQLite); reads outside a transaction borrow a connection for one statement.
Postgres locks rows, not the file: writers of different users never wait for each other.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from pgen.context.base import StoreError
from pgen.context.postgres.schema import MIGRATIONS, SCHEMA_VERSION, current_version, migrate

Row = dict[str, Any]
Connection = psycopg.Connection[Row]
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CONNECT_TIMEOUT_S = 10
POOL_TIMEOUT_S = 60.0  # a request waits this long for a free connection, then fails


def check_schema(schema: str) -> str:
    if not _SCHEMA.match(schema):
        raise ValueError(f"postgres schema {schema!r}: expected 1-63 of a-z, 0-9, '_'")
    return schema


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def open_pool(url: str, schema: str, size: int, *, what: str = "") -> ConnectionPool[Connection]:
    """An open pool of autocommit connections with dict rows and ``search_path`` at
    ``schema`` (transactions are explicit). One plain connection first: a wrong URL fails
    now, in one line naming it (password redacted), not after the pool has retried in the
    background for its whole timeout. ``what``: the user of the pool, for that line."""
    try:
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
        pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, size),
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "options": f"-c search_path={schema}",
            },
            timeout=POOL_TIMEOUT_S,
            open=False,
        )
        pool.open(wait=True, timeout=POOL_TIMEOUT_S)
    except Exception as error:
        message = " ".join(str(error).split())
        raise StoreError(f"{redact(url)}: {what}cannot connect: {message}") from error
    return pool


class PgDatabase:
    """A pool of connections to one database, with ``search_path`` at the store's schema,
    migrated to the current version when opened."""

    def __init__(self, url: str, schema: str = "pgen", *, pool_size: int = 8) -> None:
        self.url = url
        self.schema = check_schema(schema)
        self._local = threading.local()
        self.pool: ConnectionPool[Connection] = open_pool(url, self.schema, pool_size)
        self._migrate()

    @property
    def location(self) -> str:
        return f"{redact(self.url)} (schema {self.schema})"

    def close(self) -> None:
        self.pool.close()

    # -- transactions -----------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One atomic unit: everything inside commits together or not at all. Nested calls
        in the same thread join the outer transaction."""
        held: Connection | None = getattr(self._local, "connection", None)
        if held is not None:
            yield held
            return
        with self.pool.connection() as connection, connection.transaction():
            self._local.connection = connection
            try:
                yield connection
            finally:
                self._local.connection = None

    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside a ``transaction()``."""
        return getattr(self._local, "connection", None) is not None

    @contextmanager
    def _reader(self) -> Iterator[Connection]:
        held: Connection | None = getattr(self._local, "connection", None)
        if held is not None:  # inside this thread's transaction: read its writes
            yield held
            return
        with self.pool.connection() as connection:
            yield connection

    def rows(self, query: str, *params: Any) -> list[Row]:
        with self._reader() as db:
            return db.execute(query.encode(), params or None).fetchall()

    def rows_any(self, query: str, keys: Sequence[str], *params: Any) -> list[Row]:
        """``query`` ends with ``= ANY(%s)``: one array parameter, no chunking needed."""
        return self.rows(query, *params, list(keys))

    # -- schema -----------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        with self.pool.connection() as db:
            return current_version(db, self.schema)

    def _migrate(self) -> None:
        if self.schema_version == SCHEMA_VERSION:
            return
        with self.transaction() as db:
            migrate(db, self.schema, MIGRATIONS, where=self.location)

    # -- forgetting -------------------------------------------------------------------
    def vacuum_full(self, tables: Sequence[str]) -> None:
        """Rewrite ``tables`` and their indexes into new files (VACUUM FULL; outside any
        transaction, as VACUUM must be). The old files are truncated when it commits, so
        no dead copy of a deleted row stays in a table file. Plain VACUUM only marks the
        space free: the bytes stay in the page until reused (docs/privacy.md)."""
        names = sql.SQL(", ").join(sql.Identifier(self.schema, table) for table in tables)
        with self.pool.connection() as db:
            db.execute(sql.SQL("VACUUM (FULL) {}").format(names))
