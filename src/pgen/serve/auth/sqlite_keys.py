"""The keys in a small SQLite file, ``<home>/service/keys.sqlite``: the embedded default,
for one machine (``KeyRules`` holds the rules; this is the SQL)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from pgen.serve.auth.keys import KeyInfo, KeyRules, Secret

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT,              -- NULL for an admin key
    name TEXT NOT NULL,
    salt BLOB NOT NULL,
    digest BLOB NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
);
CREATE TABLE IF NOT EXISTS tenant_settings (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
"""


class SqliteKeyStore(KeyRules):
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch(mode=0o600)
        self._local = threading.local()
        with self._connection() as connection:
            connection.executescript(_SCHEMA)

    @property
    def location(self) -> str:
        return str(self.path)

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread: a connection's transaction is its thread's alone.
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
        return connection

    def _insert(self, info: KeyInfo, salt: bytes, digest: bytes) -> None:
        with self._connection() as connection:
            connection.execute(
                "INSERT INTO keys (key_id, tenant, name, salt, digest, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (info.key_id, info.tenant, info.name, salt, digest, info.created),
            )

    def _live_secret(self, key_id: str) -> Secret | None:
        row = (
            self._connection()
            .execute(
                "SELECT tenant, salt, digest FROM keys WHERE key_id=? AND revoked IS NULL",
                (key_id,),
            )
            .fetchone()
        )
        return None if row is None else Secret(row[0], bytes(row[1]), bytes(row[2]))

    def _infos(self, key_id: str | None = None, tenant: str | None = None) -> list[KeyInfo]:
        query = "SELECT key_id, tenant, name, created, revoked FROM keys"
        args: tuple[Any, ...] = ()
        if key_id is not None:
            query, args = query + " WHERE key_id=?", (key_id,)
        elif tenant is not None:
            query, args = query + " WHERE tenant=?", (tenant,)
        rows = self._connection().execute(query + " ORDER BY created, key_id", args).fetchall()
        return [KeyInfo(*row) for row in rows]

    def _mark_revoked(self, key_id: str, when: str) -> None:
        with self._connection() as connection:
            connection.execute(
                "UPDATE keys SET revoked=? WHERE key_id=? AND revoked IS NULL", (when, key_id)
            )

    def _tenant_names(self) -> list[str]:
        rows = self._connection().execute(
            "SELECT DISTINCT tenant FROM keys WHERE tenant IS NOT NULL ORDER BY tenant"
        )
        return [row[0] for row in rows]

    def _stored_settings(self, tenant: str) -> dict[str, str]:
        rows = self._connection().execute(
            "SELECT name, value FROM tenant_settings WHERE tenant=?", (tenant,)
        )
        return {name: value for name, value in rows}

    def _store_settings(self, tenant: str, values: dict[str, str]) -> None:
        with self._connection() as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO tenant_settings (tenant, name, value) VALUES (?, ?, ?)",
                [(tenant, name, value) for name, value in values.items()],
            )

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
