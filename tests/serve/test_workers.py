"""``pgen serve --workers 2``: two real worker processes on one port, one home. Concurrent
writes and reads through both lose nothing and answer no 5xx, and a job started through
one worker is answered by the other (job records live in a shared file)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from pgen.config import Config
from tests.serve.server import free_port, make_keys, start_process, wait_ready


def fresh(url: str, key: str) -> httpx.Client:
    """A client without kept-alive connections: each request may land on either worker."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=url, headers=headers, timeout=60, limits=limits)


def test_two_workers_share_writes_reads_and_jobs(tmp_path: Path, tiny_llama: Path) -> None:
    home = tmp_path / "home"
    keys = make_keys(Config(home=home), ("acme",))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_process(home, tiny_llama, port, "--workers", "2")
    try:
        wait_ready(url, process)
        workers: set[int] = set()
        deadline = time.monotonic() + 120  # against a hang only
        while len(workers) < 2 and time.monotonic() < deadline:  # both are up and answer
            workers.add(httpx.get(f"{url}/ready", timeout=10).json()["worker"])
        assert len(workers) == 2

        statuses: list[int] = []
        missing: list[str] = []
        lock = threading.Lock()

        def writer(thread: int) -> None:
            with fresh(url, keys["acme"]) as client:
                for n in range(50):
                    user = f"w{thread}-{n}"
                    records: list[dict[str, Any]] = [
                        {"type": "user", "user_id": user},
                        {"type": "document", "user_id": user, "doc_id": "d", "text": user},
                    ]
                    wrote = client.post("/records", json={"records": records})
                    read = client.get(f"/users/{user}")  # often the other worker
                    with lock:
                        statuses.extend([wrote.status_code, read.status_code])
                        if read.status_code != 200 or read.json()["total_documents"] != 1:
                            missing.append(user)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert len(statuses) == 200 and set(statuses) == {200}, sorted(set(statuses))
        assert missing == []
        with fresh(url, keys["acme"]) as client:
            users = {
                u["user_id"] for u in client.get("/users", params={"limit": 1000}).json()["users"]
            }
            assert users == {f"w{t}-{n}" for t in range(2) for n in range(50)}
            # A job through one worker; its status through whichever answers, many times.
            records = [
                {"type": "item", "item_id": "i1", "title": "Boots"},
                {"type": "interaction", "user_id": "w0-0", "item_id": "i1", "action": "buy"},
            ]
            assert client.post("/records", json={"records": records}).status_code == 200
            job = client.post("/recommenders/train", json={"model": "pop"}).json()["job_id"]
            seen: set[str] = set()
            deadline = time.monotonic() + 120
            while "succeeded" not in seen:
                assert time.monotonic() < deadline, seen
                answer = client.get(f"/jobs/{job}")
                assert answer.status_code == 200, answer.text  # never "not found" elsewhere
                seen.add(answer.json()["status"])
                time.sleep(0.05)
            assert seen <= {"queued", "running", "succeeded"}
            for _ in range(10):
                assert client.get(f"/jobs/{job}").json()["status"] == "succeeded"
    finally:
        process.terminate()
        process.wait(60)
