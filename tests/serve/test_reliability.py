"""``pgen serve`` as a process: kill -9 during large uploads loses nothing acknowledged and
leaves nothing partial, the next start is clean; SIGTERM finishes the request in flight."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from pgen.config import Config
from pgen.context.sqlite import SQLiteStore
from tests.postgres_server import PostgresServer
from tests.serve.server import free_port, make_keys, service_config, start_process, wait_ready

DOCS = 20_000  # per upload: a few MB of JSONL, one transaction
# Sessions of the test database with a transaction open (the killed server's, if any).
IN_TRANSACTION = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
)


def upload(user: str, docs: int = DOCS) -> bytes:
    lines = [json.dumps({"type": "user", "user_id": user})]
    lines += [
        json.dumps(
            {
                "type": "document",
                "user_id": user,
                "doc_id": f"d{n}",
                "text": f"note {n} of {user} " * 8,
            }
        )
        for n in range(docs)
    ]
    return ("\n".join(lines) + "\n").encode()


def read_until(connection: socket.socket, end: bytes) -> bytes:
    """What the server sent, up to and with ``end`` (or all of it, if it closes first)."""
    data = b""
    while end not in data:
        chunk = connection.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return data[: data.index(end) + len(end)] if end in data else data


def kill_9_during_uploads(
    home: Path, model: Path, *store: str, docs: int = DOCS, after_crash: Callable[[], None]
) -> None:
    """Uploads of ``docs`` documents each, one after another, to a ``pgen serve`` process
    (``store``: its --store flag, or none for SQLite); kill -9 once three are acknowledged
    and the next is on the wire or inside its transaction. ``after_crash`` checks the store
    while no server runs; then a new server must show every acknowledged upload whole, the
    one in flight whole or absent, and take writes again."""
    # The keys where the server reads them: the home's file, or the Postgres store's database.
    config = Config(home=home, store=store[-1]) if store else Config(home=home)
    keys = make_keys(config, ("acme",))
    headers = {"Authorization": f"Bearer {keys['acme']}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_process(home, model, port, *store)
    acknowledged: list[str] = []
    sent: list[str] = []
    try:
        wait_ready(url, process)

        def send() -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
                for n in range(40):
                    user = f"u{n}"
                    sent.append(user)
                    try:
                        response = client.post(
                            "/records/jsonl", files={"file": (f"{user}.jsonl", upload(user, docs))}
                        )
                    except httpx.TransportError:
                        return  # the server died under us
                    assert response.status_code == 200, response.text
                    acknowledged.append(user)

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 240
        while len(acknowledged) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.4)  # into the next upload: on the wire, or inside its transaction
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        sender.join(120)
    finally:
        if process.poll() is None:
            process.kill()
    assert len(acknowledged) >= 3 and len(sent) > len(acknowledged)

    after_crash()
    again = start_process(home, model, port, *store)
    try:
        wait_ready(url, again)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            assert client.get("/ready").json()["ready"] is True
            for user in sent:
                response = client.get(f"/users/{user}", params={"limit": 1})
                if user in acknowledged:
                    assert response.json()["total_documents"] == docs, user
                else:  # the one in flight: all of it or none of it
                    assert response.status_code == 404 or response.json()["total_documents"] == docs
            # The restarted server takes writes again.
            assert client.post(
                "/records/jsonl", files={"file": ("x.jsonl", upload("after", docs))}
            ).is_success
    finally:
        again.terminate()
        again.wait(60)


def test_kill_9_during_uploads_keeps_every_acknowledged_one_whole(
    tmp_path: Path, tiny_llama: Path
) -> None:
    def sound_file() -> None:  # the file is sound after the crash
        with SQLiteStore(tmp_path / "tenants" / "acme" / "pgen.sqlite") as opened:
            assert opened.integrity_problems() == []

    kill_9_during_uploads(tmp_path, tiny_llama, after_crash=sound_file)


def test_kill_9_during_uploads_on_postgres(
    tmp_path: Path, tiny_llama: Path, postgres_server: PostgresServer
) -> None:
    """The same on a Postgres store: the killed process's connections drop, so the server
    rolls back the transaction in flight; no acknowledged upload is missing a row."""
    url = postgres_server.url(postgres_server.create_database("kill9"))

    def no_transaction_left() -> None:  # the dead process's backends are gone with it
        with psycopg.connect(url) as connection:
            deadline = time.monotonic() + 60  # against a hang only
            while connection.execute(IN_TRANSACTION).fetchone() != (0,):
                assert time.monotonic() < deadline, "a dead client's transaction stays open"
                time.sleep(0.1)

    kill_9_during_uploads(tmp_path, tiny_llama, "--store", url, after_crash=no_transaction_left)


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_finishes_the_request_in_flight(tmp_path: Path, tiny_llama: Path) -> None:
    """The request's headers are in, the server says it reads the body (``100 Continue``);
    then SIGTERM, and only once the server has stopped taking connections, the body."""
    keys = make_keys(service_config(tmp_path, tiny_llama), ("acme",))
    body = json.dumps({"records": [{"type": "user", "user_id": "slow"}]}).encode()
    head = (
        "POST /records HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {keys['acme']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_process(tmp_path, tiny_llama, port)
    try:
        wait_ready(url, process)
        with socket.create_connection(("127.0.0.1", port), timeout=120) as connection:
            connection.sendall(head)
            assert read_until(connection, b"\r\n\r\n").startswith(b"HTTP/1.1 100 ")
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 120  # against a hang only
            while not refuses_connections(port):  # shutting down: the request is in flight
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.01)
            connection.sendall(body)
            answer = read_until(connection, b"\r\n\r\n")
        # Uvicorn re-raises the signal once it has shut down cleanly: exit by SIGTERM.
        assert process.wait(120) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    with SQLiteStore(tmp_path / "tenants" / "acme" / "pgen.sqlite") as opened:
        assert [user.user_id for user in opened.users()] == ["slow"]
