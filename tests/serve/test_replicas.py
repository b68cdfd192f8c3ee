"""Two ``pgen serve`` processes on one Postgres: a write through one is read through the
other, in search and in generate, within a bounded time. Each replica keeps its own
in-memory indexes; they follow the store's change feed (the user's revision, read on
every request), so the other replica's write is seen by the next request after it.

The replicas have different homes: the keys live in the database (schema
``pgen_service``), so a key made by ``pgen keys create`` opens both, one made through one
replica's admin route opens the other, and a revoke through one is refused by the other."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgen.cli.main import main
from tests.postgres_server import PostgresServer
from tests.serve.server import free_port, start_process, wait_ready

VISIBLE_WITHIN_S = 60.0  # generous: the machine is loaded; measured far below (printed)


def doc(doc_id: str, text: str) -> dict[str, Any]:
    return {"type": "document", "user_id": "alice", "doc_id": doc_id, "text": text}


def until(check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` holds (polled), failing past ``VISIBLE_WITHIN_S``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < VISIBLE_WITHIN_S, "the other replica never saw it"
        time.sleep(0.05)
    return time.monotonic() - start


def cli_key(capsys: pytest.CaptureFixture[str], home: Path, url: str, *who: str) -> str:
    """A key made by ``pgen keys create`` with the Postgres store (printed alone)."""
    capsys.readouterr()
    assert main(["keys", "create", *who, "--quiet", "--home", str(home), "--store", url]) == 0
    return capsys.readouterr().out.strip()


def test_a_write_through_one_replica_is_read_through_the_other(
    tmp_path: Path,
    tiny_llama: Path,
    postgres_server: PostgresServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    homes = [tmp_path / "home-a", tmp_path / "home-b"]  # no shared disk for keys
    for home in homes:
        home.mkdir()
    url = postgres_server.url(postgres_server.create_database("replicas"))
    key = cli_key(capsys, tmp_path / "operator", url, "--tenant", "acme")
    admin = cli_key(capsys, tmp_path / "operator", url, "--admin")
    ports = [free_port(), free_port()]
    replicas = [
        start_process(home, tiny_llama, port, "--store", url)
        for home, port in zip(homes, ports, strict=True)
    ]
    try:
        for port, process in zip(ports, replicas, strict=True):
            wait_ready(f"http://127.0.0.1:{port}", process)
        a, b = (
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            )
            for port in ports
        )
        with a, b:
            first = a.post("/records", json={"records": [doc("d1", "I hike in the rain")]})
            assert first.status_code == 200, first.text

            def found(query: str, doc_id: str) -> bool:
                response = b.post("/users/alice/search", json={"query": query, "k": 5})
                return response.status_code == 200 and doc_id in [
                    hit["document"]["doc_id"] for hit in response.json()
                ]

            until(lambda: found("hike rain", "d1"))  # B builds its index for alice here
            # A second write through A, after B holds an index for alice: B follows the feed.
            record = doc("d2", "my glacier-7731 camera battery lasts long")
            assert a.post("/records", json={"records": [record]}).status_code == 200
            seconds = until(lambda: found("glacier camera battery", "d2"))
            print(f"replica B saw A's write after {seconds:.3f} s")
            result = b.post(
                "/users/alice/generate",
                json={"instruction": "my glacier camera battery", "strategy": "rag", "k": 1},
            ).json()
            assert result["provenance"]["documents"] == ["d2"]
            # Forgetting through A is seen by B: the user is gone.
            assert a.delete("/users/alice").status_code == 200
            until(lambda: b.get("/users/alice").status_code == 404)
            assert b.post("/users/alice/search", json={"query": "glacier"}).status_code == 404
            # A key made through A's admin route opens B; revoked through B, A refuses it.
            as_admin = {"Authorization": f"Bearer {admin}"}
            made = a.post("/admin/keys", json={"tenant": "acme"}, headers=as_admin)
            assert made.status_code == 201, made.text
            fresh = {"Authorization": f"Bearer {made.json()['key']}"}
            assert b.get("/users", headers=fresh).status_code == 200
            revoked = b.delete(f"/admin/keys/{made.json()['key_id']}", headers=as_admin)
            assert revoked.status_code == 200
            assert a.get("/users", headers=fresh).status_code == 401
            assert b.get("/users", headers=fresh).status_code == 401
            assert a.get("/users").status_code == 200  # the CLI's key still opens A
        # Neither home holds a key file: the keys were only ever in the database.
        assert not [p for home in homes for p in home.rglob("keys.sqlite*")]
    finally:
        for process in replicas:
            process.terminate()
        for process in replicas:
            process.wait(60)
