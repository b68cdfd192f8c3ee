"""``pgen serve`` as a process: kill -9 during large uploads loses nothing acknowledged and
leaves nothing partial, the next start is clean; SIGTERM finishes the request in flight."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from pgen.context.store import SQLiteStore
from tests.serve.server import free_port, make_keys, service_config, start_process, wait_ready

DOCS = 20_000  # per upload: a few MB of JSONL, one transaction


def upload(user: str) -> bytes:
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
        for n in range(DOCS)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_kill_9_during_uploads_keeps_every_acknowledged_one_whole(
    tmp_path: Path, tiny_llama: Path
) -> None:
    keys = make_keys(service_config(tmp_path, tiny_llama), ("acme",))
    headers = {"Authorization": f"Bearer {keys['acme']}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_process(tmp_path, tiny_llama, port)
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
                            "/records/jsonl", files={"file": (f"{user}.jsonl", upload(user))}
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

    store = tmp_path / "tenants" / "acme" / "pgen.sqlite"
    with SQLiteStore(store) as opened:  # the file is sound after the crash
        assert opened.integrity_problems() == []
    again = start_process(tmp_path, tiny_llama, port)
    try:
        wait_ready(url, again)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            assert client.get("/ready").json()["ready"] is True
            for user in sent:
                response = client.get(f"/users/{user}", params={"limit": 1})
                if user in acknowledged:
                    assert response.json()["total_documents"] == DOCS, user
                else:  # the one in flight: all of it or none of it
                    assert response.status_code == 404 or response.json()["total_documents"] == DOCS
            # The restarted server takes writes again.
            assert client.post(
                "/records/jsonl", files={"file": ("x.jsonl", upload("after"))}
            ).is_success
    finally:
        again.terminate()
        again.wait(60)


def slow_body(seconds: float) -> Iterator[bytes]:
    records = [{"type": "user", "user_id": "slow"}]
    data = json.dumps({"records": records}).encode()
    step = max(1, len(data) // 10)
    for start in range(0, len(data), step):
        yield data[start : start + step]
        time.sleep(seconds / 10)


def test_sigterm_finishes_the_request_in_flight(tmp_path: Path, tiny_llama: Path) -> None:
    keys = make_keys(service_config(tmp_path, tiny_llama), ("acme",))
    headers = {"Authorization": f"Bearer {keys['acme']}", "Content-Type": "application/json"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_process(tmp_path, tiny_llama, port)
    try:
        wait_ready(url, process)
        result: dict[str, int] = {}

        def send() -> None:
            response = httpx.post(
                f"{url}/records", content=slow_body(2.0), headers=headers, timeout=60
            )
            result["status"] = response.status_code

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.6)  # the body is still arriving
        process.send_signal(signal.SIGTERM)
        sender.join(60)
        # Uvicorn re-raises the signal once it has shut down cleanly: exit by SIGTERM.
        assert process.wait(60) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
    assert result == {"status": 200}
    with SQLiteStore(tmp_path / "tenants" / "acme" / "pgen.sqlite") as opened:
        assert [user.user_id for user in opened.users()] == ["slow"]
