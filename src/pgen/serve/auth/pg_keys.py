"""The keys in the Postgres store's database, schema ``pgen_service``: every replica on
that database reads the same rows, so a key created or revoked through one holds on all
of them at the next request, and the replicas need no shared disk for keys.

The schema is versioned like the store's and the jobs' (``schema_version``, migrated on
open under an advisory lock), through the store's own pool and migration code
(``pgen.context.postgres``). ``KeyRules`` holds the rules; this is the SQL. Text compares
byte by byte (``COLLATE "C"``) so listings order as SQLite orders them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from pgen.context.postgres.connection import check_schema, open_pool, redact
from pgen.context.postgres.schema import migrate
from pgen.serve.auth.keys import KeyInfo, KeyRules, Secret

Row = dict[str, Any]
SCHEMA = "pgen_service"

# One entry per version, applied in order (``schema_version`` records how many ran).
MIGRATIONS: list[str] = [
    # 1: the keys (the SQLite file's columns) and the tenants' settings.
    """
    CREATE TABLE keys (
        key_id  TEXT COLLATE "C" PRIMARY KEY,
        tenant  TEXT COLLATE "C",            -- NULL for an admin key
        name    TEXT COLLATE "C" NOT NULL,
        salt    BYTEA NOT NULL,
        digest  BYTEA NOT NULL,
        created TEXT COLLATE "C" NOT NULL,
        revoked TEXT COLLATE "C"
    );
    CREATE INDEX keys_by_tenant ON keys (tenant);
    CREATE TABLE tenant_settings (
        tenant TEXT COLLATE "C" NOT NULL,
        name   TEXT COLLATE "C" NOT NULL,
        value  TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant, name)
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
_INFO = "SELECT key_id, tenant, name, created, revoked FROM keys"


class PgKeyStore(KeyRules):
    # Every request's key is checked here: a round trip, run off the event loop (deps.py).
    remote = True

    def __init__(self, url: str, schema: str = SCHEMA, *, pool_size: int = 4) -> None:
        self.url = url
        self.schema = check_schema(schema)
        self.pool: ConnectionPool[psycopg.Connection[Row]] = open_pool(
            url, self.schema, pool_size, what="keys: "
        )
        try:
            with self.pool.connection() as db, db.transaction():
                migrate(db, self.schema, MIGRATIONS, where=f"{self.location}: keys")
        except BaseException:
            self.pool.close()
            raise

    @property
    def location(self) -> str:
        return f"{redact(self.url)} (schema {self.schema})"

    def _rows(self, query: str, *params: Any) -> list[Row]:
        with self.pool.connection() as db:
            return db.execute(query.encode(), params or None).fetchall()

    def _write(self, query: str, *params: Any) -> None:
        with self.pool.connection() as db:  # autocommit: one statement, one transaction
            db.execute(query.encode(), params)

    def _insert(self, info: KeyInfo, salt: bytes, digest: bytes) -> None:
        self._write(
            "INSERT INTO keys (key_id, tenant, name, salt, digest, created) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            *(info.key_id, info.tenant, info.name, salt, digest, info.created),
        )

    def _live_secret(self, key_id: str) -> Secret | None:
        rows = self._rows(
            "SELECT tenant, salt, digest FROM keys WHERE key_id=%s AND revoked IS NULL", key_id
        )
        if not rows:
            return None
        return Secret(rows[0]["tenant"], bytes(rows[0]["salt"]), bytes(rows[0]["digest"]))

    def _infos(self, key_id: str | None = None, tenant: str | None = None) -> list[KeyInfo]:
        order = " ORDER BY created, key_id"
        if key_id is not None:
            rows = self._rows(_INFO + " WHERE key_id=%s" + order, key_id)
        elif tenant is not None:
            rows = self._rows(_INFO + " WHERE tenant=%s" + order, tenant)
        else:
            rows = self._rows(_INFO + order)
        return [KeyInfo(**row) for row in rows]

    def _mark_revoked(self, key_id: str, when: str) -> None:
        self._write("UPDATE keys SET revoked=%s WHERE key_id=%s AND revoked IS NULL", when, key_id)

    def _tenant_names(self) -> list[str]:
        rows = self._rows(
            "SELECT DISTINCT tenant FROM keys WHERE tenant IS NOT NULL ORDER BY tenant"
        )
        return [row["tenant"] for row in rows]

    def _stored_settings(self, tenant: str) -> dict[str, str]:
        rows = self._rows("SELECT name, value FROM tenant_settings WHERE tenant=%s", tenant)
        return {row["name"]: row["value"] for row in rows}

    def _store_settings(self, tenant: str, values: dict[str, str]) -> None:
        with self.pool.connection() as db, db.transaction(), db.cursor() as cursor:
            cursor.executemany(
                b"INSERT INTO tenant_settings (tenant, name, value) VALUES (%s, %s, %s) "
                b"ON CONFLICT (tenant, name) DO UPDATE SET value = EXCLUDED.value",
                [(tenant, name, value) for name, value in values.items()],
            )

    def close(self) -> None:
        self.pool.close()
