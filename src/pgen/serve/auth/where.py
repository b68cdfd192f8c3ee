"""Where the service keeps its keys: with a Postgres store, in that database (schema
``pgen_service``, shared by every replica on it); otherwise in
``<home>/service/keys.sqlite``. ``pgen serve`` and ``pgen keys`` both open them here, so
the CLI writes where the server reads."""

from __future__ import annotations

from pathlib import Path

from pgen.config import Config
from pgen.factory.specs import store_spec
from pgen.serve.auth.keys import KeyStore


def service_database(config: Config) -> str | None:
    """The Postgres URL of the configured store, or None for any other store. The
    service's own rows (keys, jobs) live in that database beside the tenants' schemas."""
    spec = store_spec(config.store, config)
    url = spec.settings.get("url")
    if spec.provider in ("postgres", "postgresql") and url:
        return str(url)
    return None


def key_path(config: Config) -> Path:
    return config.home / "service" / "keys.sqlite"


def keys_location(config: Config) -> str:
    """Where ``open_keys`` finds them (password redacted), without opening anything."""
    url = service_database(config)
    if url is None:
        return str(key_path(config))
    from pgen.context.postgres.connection import redact
    from pgen.serve.auth.pg_keys import SCHEMA

    return f"{redact(url)} (schema {SCHEMA})"


def open_keys(config: Config) -> KeyStore:
    url = service_database(config)
    if url is None:
        from pgen.serve.auth.sqlite_keys import SqliteKeyStore

        return SqliteKeyStore(key_path(config))
    from pgen.serve.auth.pg_keys import PgKeyStore  # psycopg: the postgres extra

    return PgKeyStore(url)
