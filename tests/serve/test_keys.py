"""The key contract on both backends (the home's SQLite file; the Postgres store's
database, schema ``pgen_service``): create, verify, revoke, list, tenants, settings, and
that two openings of one place see each other's writes at once. Then Postgres alone: the
schema is versioned, and ``pgen keys`` with a Postgres store writes to the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pgen.cli.main import main
from pgen.config import Config
from pgen.context.base import StoreError
from pgen.serve.auth import KeyStore, key_path, open_keys
from pgen.serve.auth.keys import TENANT_SETTINGS
from pgen.serve.auth.pg_keys import SCHEMA, SCHEMA_VERSION, PgKeyStore
from pgen.serve.auth.sqlite_keys import SqliteKeyStore
from tests.postgres_server import PostgresServer


def secret_of(token: str) -> bytes:
    """The secret part of ``pgen_<16 hex>_<secret>`` (the secret may hold '_' itself)."""
    return token[len("pgen_") + 16 + 1 :].encode()


@dataclass
class KeysAt:
    """One place that holds keys: ``open()`` a store on it, ``raw()`` its bytes on disk."""

    backend: str
    open: Callable[[], KeyStore]
    raw: Callable[[], bytes]


@pytest.fixture(params=["sqlite", "postgres"])
def keys_at(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeysAt]:
    if request.param == "sqlite":
        config = Config(home=tmp_path)
        yield KeysAt(
            "sqlite",
            lambda: open_keys(config),
            lambda: b"".join(p.read_bytes() for p in tmp_path.rglob("keys.sqlite*")),
        )
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = server.create_database("keys")
    config = Config(home=tmp_path, store=server.url(database))
    folder = server.database_folder(database)
    yield KeysAt(
        "postgres", lambda: open_keys(config), lambda: b"".join(server.files(folder).values())
    )


def test_the_key_contract(keys_at: KeysAt) -> None:
    keys = keys_at.open()
    assert isinstance(keys, PgKeyStore if keys_at.backend == "postgres" else SqliteKeyStore)
    try:
        token, info = keys.create("acme", "web")
        admin_token, admin = keys.create(None, "ops")
        globex_token, _ = keys.create("globex")
        assert token.startswith(f"pgen_{info.key_id}_") and info.revoked is None
        who = keys.verify(token)
        assert who is not None and who.tenant == "acme" and not who.admin
        boss = keys.verify(admin_token)
        assert boss is not None and boss.admin and boss.key_id == admin.key_id
        # Malformed, unknown, and a known id with a wrong secret: all refused alike.
        wrong_secret = token[: -len("x")] + ("A" if token[-1] != "A" else "B")
        unknown_id = f"pgen_{'0' * 16}_{secret_of(token).decode()}"
        for bad in ("", "nope", token + "x", wrong_secret, unknown_id):
            assert keys.verify(bad) is None, bad
        with pytest.raises(ValueError, match="tenant 'Bad Name!'"):
            keys.create("Bad Name!")
        # Listing: every key or one tenant's, in creation order, no secret in any field.
        assert {k.key_id for k in keys.list_keys()} == {
            info.key_id,
            admin.key_id,
            keys.verify(globex_token).key_id,  # type: ignore[union-attr]
        }
        assert [k.key_id for k in keys.list_keys("acme")] == [info.key_id]
        assert keys.list_keys("acme")[0] == info
        assert keys.tenants() == ["acme", "globex"]  # the admin key has none
        # Revoking: refused at once; a second revoke keeps the first time; unknown: KeyError.
        revoked = keys.revoke(info.key_id)
        assert revoked.revoked is not None and keys.verify(token) is None
        assert keys.revoke(info.key_id).revoked == revoked.revoked
        assert keys.list_keys("acme")[0].revoked == revoked.revoked
        assert keys.tenants() == ["acme", "globex"]  # a revoked key's tenant is still known
        with pytest.raises(KeyError, match="no key 'ffff"):
            keys.revoke("ffff")
        # Settings: defaults, set per tenant (another tenant keeps its own), unknown refused.
        assert keys.settings("acme") == TENANT_SETTINGS == {"memory": False}
        assert keys.set_settings("acme", {"memory": True}) == {"memory": True}
        assert keys.settings("globex") == {"memory": False}
        with pytest.raises(ValueError, match="unknown settings \\['volume'\\]"):
            keys.set_settings("acme", {"volume": True})
        assert keys.settings("acme") == {"memory": True}
        # The rows hold no secret: nothing on disk opens a key.
        raw = keys_at.raw()
        assert info.key_id.encode() in raw  # the rows are there, so the check can fail
        for secret in (token, admin_token, globex_token):
            assert secret_of(secret) not in raw
    finally:
        keys.close()


def test_two_openings_see_each_others_writes_at_once(keys_at: KeysAt) -> None:
    """Two processes' stores on one place (two replicas on one database): a key made
    through one opens the other, a revoke through one is refused by the other."""
    one, two = keys_at.open(), keys_at.open()
    try:
        token, info = one.create("acme")
        seen = two.verify(token)
        assert seen is not None and seen == one.verify(token) and seen.tenant == "acme"
        two.set_settings("acme", {"memory": True})
        assert one.settings("acme") == {"memory": True}
        two.revoke(info.key_id)
        assert one.verify(token) is None
    finally:
        one.close()
        two.close()


def test_the_postgres_keys_schema_is_versioned(postgres_server: PostgresServer) -> None:
    url = postgres_server.url(postgres_server.create_database("keys"))
    PgKeyStore(url).close()
    PgKeyStore(url).close()  # a second open finds the work done
    with psycopg.connect(url, autocommit=True) as db:
        version = db.execute(f"SELECT version FROM {SCHEMA}.schema_version").fetchall()
        assert version == [(SCHEMA_VERSION,)]
        db.execute(f"UPDATE {SCHEMA}.schema_version SET version = version + 1")
    with pytest.raises(StoreError, match="keys has schema version 2, newer than this pgen"):
        PgKeyStore(url)


def test_pgen_keys_with_a_postgres_store_writes_to_the_database(
    tmp_path: Path, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres_server.url(postgres_server.create_database("keys"))
    where = ["--home", str(tmp_path), "--store", url]
    assert main(["keys", "create", "--tenant", "acme", "--quiet", *where]) == 0
    token = capsys.readouterr().out.strip()
    with closing(PgKeyStore(url)) as keys:
        who = keys.verify(token)
        assert who is not None and who.tenant == "acme"
        assert main(["keys", "list", *where]) == 0
        listing = capsys.readouterr().out
        assert who.key_id in listing and f"1 keys in {url}" in listing and SCHEMA in listing
        assert main(["keys", "revoke", who.key_id, *where]) == 0
        assert keys.verify(token) is None
    assert not key_path(Config(home=tmp_path)).exists()  # nothing written to the home
    # An unreachable database: one line naming it, no traceback.
    dead = "postgresql://pgen@127.0.0.1:1/nowhere"
    assert main(["keys", "list", "--home", str(tmp_path), "--store", dead]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and dead in error and "keys: cannot connect" in error
