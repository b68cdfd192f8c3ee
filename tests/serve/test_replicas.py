"""Two ``pgen serve`` processes on one Postgres: a write through one is read through the
other, in search and in generate, within a bounded time. Each replica keeps its own
in-memory indexes; they follow the store's change feed (the user's revision, read on
every request), so the other replica's write is seen by the next request after it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pgen.config import Config
from tests.postgres_server import PostgresServer
from tests.serve.server import free_port, make_keys, start_process, wait_ready

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


def test_a_write_through_one_replica_is_read_through_the_other(
    tmp_path: Path, tiny_llama: Path, postgres_server: PostgresServer
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = postgres_server.url(postgres_server.create_database("replicas"))
    key = make_keys(Config(home=home), ("acme",))["acme"]
    ports = [free_port(), free_port()]
    replicas = [start_process(home, tiny_llama, port, "--store", url) for port in ports]
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
    finally:
        for process in replicas:
            process.terminate()
        for process in replicas:
            process.wait(60)
