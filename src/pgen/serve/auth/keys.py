"""API keys, stored hashed, each belonging to one tenant (or an admin key to none).

A key reads ``pgen_<key id>_<secret>``: the key id finds the row, the secret is checked
against a salted SHA-256 digest in constant time. The secret is 32 random bytes, so a fast
hash is enough (scrypt exists for guessable passwords, and would add milliseconds to every
request). The key file holds no secret: a copy of it opens nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TOKEN = re.compile(r"^pgen_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
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
# Settings a tenant may change, with their defaults.
TENANT_SETTINGS: dict[str, bool] = {"memory": False}


def check_tenant(tenant: str) -> str:
    """A tenant name is a folder name too: lowercase letters, digits, '-' and '_'."""
    if not _TENANT.match(tenant):
        raise ValueError(
            f"tenant {tenant[:70]!r}: expected 1-63 of a-z, 0-9, '-', '_' (starting with a "
            "letter or digit)"
        )
    return tenant


@dataclass(frozen=True)
class Principal:
    """Who a request comes from."""

    key_id: str
    tenant: str | None  # None: an admin key

    @property
    def admin(self) -> bool:
        return self.tenant is None


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant: str | None
    name: str
    created: str
    revoked: str | None


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("ascii")).digest()


class KeyStore:
    """The service's small SQLite file of keys and tenant settings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch(mode=0o600)
        self._local = threading.local()
        with self._connection() as connection:
            connection.executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread: a connection's transaction is its thread's alone.
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
        return connection

    def create(self, tenant: str | None, name: str = "") -> tuple[str, KeyInfo]:
        """A new key: the token (shown once, never stored) and its record."""
        if tenant is not None:
            check_tenant(tenant)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connection() as connection:
            connection.execute(
                "INSERT INTO keys (key_id, tenant, name, salt, digest, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, tenant, name, salt, _digest(salt, secret), created),
            )
        return f"pgen_{key_id}_{secret}", KeyInfo(key_id, tenant, name, created, None)

    def verify(self, token: str) -> Principal | None:
        """The key's principal, or None for a malformed, unknown or revoked key."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        row = (
            self._connection()
            .execute(
                "SELECT tenant, salt, digest FROM keys WHERE key_id=? AND revoked IS NULL",
                (key_id,),
            )
            .fetchone()
        )
        if row is None or not hmac.compare_digest(_digest(row[1], secret), row[2]):
            return None
        return Principal(key_id, row[0])

    def list_keys(self, tenant: str | None = None) -> list[KeyInfo]:
        query = "SELECT key_id, tenant, name, created, revoked FROM keys"
        args: tuple[Any, ...] = ()
        if tenant is not None:
            query, args = query + " WHERE tenant=?", (tenant,)
        rows = self._connection().execute(query + " ORDER BY created, key_id", args).fetchall()
        return [KeyInfo(*row) for row in rows]

    def revoke(self, key_id: str) -> KeyInfo:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connection() as connection:
            connection.execute(
                "UPDATE keys SET revoked=? WHERE key_id=? AND revoked IS NULL", (now, key_id)
            )
        for info in self.list_keys():
            if info.key_id == key_id:
                return info
        raise KeyError(f"no key {key_id[:40]!r}")

    def tenants(self) -> list[str]:
        rows = self._connection().execute(
            "SELECT DISTINCT tenant FROM keys WHERE tenant IS NOT NULL ORDER BY tenant"
        )
        return [row[0] for row in rows]

    def settings(self, tenant: str) -> dict[str, bool]:
        rows = self._connection().execute(
            "SELECT name, value FROM tenant_settings WHERE tenant=?", (tenant,)
        )
        stored = {name: value == "1" for name, value in rows}
        return {name: stored.get(name, default) for name, default in TENANT_SETTINGS.items()}

    def set_settings(self, tenant: str, values: dict[str, bool]) -> dict[str, bool]:
        unknown = set(values) - set(TENANT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; known: {list(TENANT_SETTINGS)}")
        with self._connection() as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO tenant_settings (tenant, name, value) VALUES (?, ?, ?)",
                [(tenant, name, "1" if value else "0") for name, value in values.items()],
            )
        return self.settings(tenant)

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
