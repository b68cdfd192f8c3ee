"""The SQLite connection under the store: pragmas, migrations and transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from pgen.context.base import StoreError
from pgen.context.schema import MIGRATIONS, SCHEMA_VERSION


class Database:
    """A SQLite file at the current schema version, with one-transaction-per-batch writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Deleted content is overwritten with zeros, so a deleted user's text does not
        # linger in free pages of the file.
        self._db.execute("PRAGMA secure_delete=ON")
        self._migrate()

    # -- plumbing ---------------------------------------------------------------------
    @property
    def location(self) -> str:
        return str(self.path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this pgen "
                f"({SCHEMA_VERSION}); upgrade pgen"
            )
        if current == SCHEMA_VERSION:
            return
        with self.transaction():
            for script in MIGRATIONS[current:]:
                for statement in script.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: everything inside commits together or not at all."""
        if self._db.in_transaction:  # nested: the outer transaction decides
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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
