"""Fixtures of the service tests: the tiny Llama loaded once, a server per module with two
tenants (acme, globex) that both have a user named alice, and each tenant's canary text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgen.models.text import TransformersTextModel
from pgen.serve.tenants import tenant_schema
from tests.postgres_server import PostgresServer
from tests.serve.server import Running, serve_in_thread, service_config

CANARY = {"acme": "zanzibar-acme-7731", "globex": "quokka-globex-5519"}


def tenant_records(tenant: str) -> list[dict[str, Any]]:
    canary = CANARY[tenant]
    return [
        {"type": "user", "user_id": "alice", "profile": {"secret": canary}},
        {"type": "user", "user_id": f"{tenant}-bob", "profile": {}},
        {
            "type": "document",
            "user_id": "alice",
            "doc_id": "a1",
            "text": f"I hike in the mountains every weekend {canary}",
        },
        {
            "type": "document",
            "user_id": "alice",
            "doc_id": "a2",
            "text": f"my battery lasts long and the screen is bright {canary}",
        },
        {
            "type": "document",
            "user_id": "alice",
            "doc_id": "a3",
            "text": "great sound, poor battery, would not buy again",
        },
        {
            "type": "document",
            "user_id": f"{tenant}-bob",
            "doc_id": "b1",
            "text": f"politics and sports news {canary}",
        },
        {"type": "item", "item_id": "i1", "title": f"Boots {canary}", "text": "hiking boots"},
        {"type": "item", "item_id": "i2", "title": "Tent", "text": "a light tent"},
        {"type": "item", "item_id": "i3", "title": "Stove", "text": "a camping stove"},
        {"type": "interaction", "user_id": "alice", "item_id": "i1", "action": "buy"},
        {"type": "interaction", "user_id": f"{tenant}-bob", "item_id": "i2", "action": "buy"},
        {"type": "interaction", "user_id": f"{tenant}-bob", "item_id": "i3", "action": "view"},
    ]


@pytest.fixture(scope="session")
def serve_model(tiny_llama: Path) -> TransformersTextModel:
    return TransformersTextModel(str(tiny_llama), name="tiny-llama", batch_size=16)


@contextmanager
def tenants_server(
    home: Path, tiny_llama: Path, serve_model: TransformersTextModel, **settings: Any
) -> Iterator[Running]:
    """A server whose two tenants hold their records (``settings``: a store URL, say)."""
    config = service_config(home, tiny_llama, **settings)
    with serve_in_thread(config, text_model=serve_model) as running:
        for tenant in CANARY:
            with running.client(tenant) as client:
                response = client.post("/records", json={"records": tenant_records(tenant)})
                assert response.status_code == 200, response.text
        yield running


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path, serve_model: TransformersTextModel
) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("serve-home")
    with tenants_server(home, tiny_llama, serve_model) as running:
        yield running


@pytest.fixture(scope="module")
def postgres_tenants_server(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_llama: Path,
    serve_model: TransformersTextModel,
    postgres_server: PostgresServer,
) -> Iterator[Running]:
    """The same two tenants in one Postgres database, a schema each."""
    home = tmp_path_factory.mktemp("serve-postgres")
    url = postgres_server.url(postgres_server.create_database("serve"))
    with tenants_server(home, tiny_llama, serve_model, store=url) as running:
        # Really in Postgres: a schema per tenant holding its users, no tenant file; the
        # keys in the service's schema, no key file.
        with psycopg.connect(url) as db:
            for tenant in CANARY:
                users = db.execute(f"SELECT user_id FROM {tenant_schema(tenant)}.users")
                assert {row[0] for row in users} == {"alice", f"{tenant}-bob"}
            tenants = db.execute("SELECT tenant FROM pgen_service.keys ORDER BY tenant")
            assert [row[0] for row in tenants] == ["acme", "globex", None]
        assert not list(home.rglob("pgen.sqlite")) and not list(home.rglob("keys.sqlite"))
        yield running


class JobRowsAt:
    """Where a test's job rows live: a SQLite file, or a fresh database of the session's
    real Postgres server (schema ``pgen_jobs``); ``raw()``: the bytes on disk of either."""

    def __init__(self, where: Path | str, raw: Any) -> None:
        self.where = where
        self.raw: Any = raw  # () -> bytes

    @property
    def backend(self) -> str:
        return "postgres" if isinstance(self.where, str) else "sqlite"


@pytest.fixture(params=["sqlite", "postgres"])
def job_rows_at(request: pytest.FixtureRequest, tmp_path: Path) -> JobRowsAt:
    """Both backends of the durable jobs, for the same tests. The in-process works' gates
    and signals are by name: cleared, so the second backend's run starts unset."""
    from tests.serve import job_works

    job_works.GATES.clear()
    job_works.SIGNALS.clear()
    job_works.RAN.clear()
    if request.param == "sqlite":
        path = tmp_path / "jobs.sqlite"
        return JobRowsAt(
            path, lambda: b"".join(p.read_bytes() for p in tmp_path.glob("jobs.sqlite*"))
        )
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = server.create_database("jobs")
    folder = server.database_folder(database)
    return JobRowsAt(server.url(database), lambda: b"".join(server.files(folder).values()))
