"""API keys, stored hashed, each belonging to one tenant (or an admin key to none).

A key reads ``pgen_<key id>_<secret>``: the key id finds the row, the secret is checked
against a salted SHA-256 digest in constant time. The secret is 32 random bytes, so a fast
hash is enough (scrypt exists for guessable passwords, and would add milliseconds to every
request). The rows hold no secret: a copy of them opens nothing.

Two backends keep the rows (``KeyStore`` is what both offer): a SQLite file
(``SqliteKeyStore``, the embedded default) and the Postgres store's database
(``PgKeyStore``, shared by every replica on it). The rules — the token's form, the digest,
the comparison, revocation, tenant names, the settings and their defaults — live here
once, in ``KeyRules``; a backend only reads and writes rows, so both answer alike.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TOKEN = re.compile(r"^pgen_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
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


@dataclass(frozen=True)
class Secret:
    """What checks a live key: its tenant, salt and digest (never the secret)."""

    tenant: str | None
    salt: bytes
    digest: bytes


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("ascii")).digest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore(Protocol):
    """The service's keys and tenant settings, wherever they are kept."""

    @property
    def location(self) -> str:
        """Where the rows are, for messages (a file, or a redacted URL and schema)."""
        ...

    @property
    def remote(self) -> bool:
        """Whether a lookup is a network round trip (then not run on the event loop)."""
        ...

    def create(self, tenant: str | None, name: str = "") -> tuple[str, KeyInfo]: ...
    def verify(self, token: str) -> Principal | None: ...
    def list_keys(self, tenant: str | None = None) -> list[KeyInfo]: ...
    def revoke(self, key_id: str) -> KeyInfo: ...
    def tenants(self) -> list[str]: ...
    def settings(self, tenant: str) -> dict[str, bool]: ...
    def set_settings(self, tenant: str, values: dict[str, bool]) -> dict[str, bool]: ...
    def close(self) -> None: ...


class KeyRules(ABC):
    """``KeyStore`` over a backend's rows: the rules here, the SQL in the subclass."""

    remote = False

    @property
    @abstractmethod
    def location(self) -> str: ...

    # -- rows (the backend) -------------------------------------------------------------
    @abstractmethod
    def _insert(self, info: KeyInfo, salt: bytes, digest: bytes) -> None: ...

    @abstractmethod
    def _live_secret(self, key_id: str) -> Secret | None:
        """The key's secret row, or None when it is unknown or revoked."""

    @abstractmethod
    def _infos(self, key_id: str | None = None, tenant: str | None = None) -> list[KeyInfo]:
        """Keys ordered by creation, all or those of one key id or one tenant."""

    @abstractmethod
    def _mark_revoked(self, key_id: str, when: str) -> None:
        """Set ``revoked`` on a key not revoked yet (a second revoke keeps the first time)."""

    @abstractmethod
    def _tenant_names(self) -> list[str]: ...

    @abstractmethod
    def _stored_settings(self, tenant: str) -> dict[str, str]: ...

    @abstractmethod
    def _store_settings(self, tenant: str, values: dict[str, str]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- the rules ----------------------------------------------------------------------
    def create(self, tenant: str | None, name: str = "") -> tuple[str, KeyInfo]:
        """A new key: the token (shown once, never stored) and its record."""
        if tenant is not None:
            check_tenant(tenant)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        info = KeyInfo(key_id, tenant, name, _now(), None)
        self._insert(info, salt, _digest(salt, secret))
        return f"pgen_{key_id}_{secret}", info

    def verify(self, token: str) -> Principal | None:
        """The key's principal, or None for a malformed, unknown or revoked key."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        row = self._live_secret(key_id)
        if row is None or not hmac.compare_digest(_digest(row.salt, secret), row.digest):
            return None
        return Principal(key_id, row.tenant)

    def list_keys(self, tenant: str | None = None) -> list[KeyInfo]:
        return self._infos(tenant=tenant)

    def revoke(self, key_id: str) -> KeyInfo:
        self._mark_revoked(key_id, _now())
        found = self._infos(key_id=key_id)
        if not found:
            raise KeyError(f"no key {key_id[:40]!r}")
        return found[0]

    def tenants(self) -> list[str]:
        """The tenants that have a key (revoked or not)."""
        return self._tenant_names()

    def settings(self, tenant: str) -> dict[str, bool]:
        stored = {name: value == "1" for name, value in self._stored_settings(tenant).items()}
        return {name: stored.get(name, default) for name, default in TENANT_SETTINGS.items()}

    def set_settings(self, tenant: str, values: dict[str, bool]) -> dict[str, bool]:
        unknown = set(values) - set(TENANT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; known: {list(TENANT_SETTINGS)}")
        self._store_settings(tenant, {name: "1" if on else "0" for name, on in values.items()})
        return self.settings(tenant)
