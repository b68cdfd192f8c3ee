"""A stale adapter in the service (``stale_adapters = "serve"``, the default): the request
is answered with the adapter as it is and a note, and one retrain job is queued for the
user, however many requests meet the stale adapter meanwhile."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.serve.server import Running
from tests.serve.test_api import poll

USER = "stale-sam"


def _generate(server: Running) -> dict[str, Any]:
    with server.client("acme") as client:
        body = {"instruction": "write about my week", "strategy": "lora+rag", "k": 1}
        response = client.post(f"/users/{USER}/generate", json=body)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


def _retrains(server: Running) -> list[dict[str, Any]]:
    with server.client("acme") as client:
        jobs = client.get("/jobs").json()
    return [j for j in jobs if j["user_id"] == USER and j["kind"] == "train:lora"]


def test_a_stale_adapter_is_served_noted_and_retrained_once(server: Running) -> None:
    with server.client("acme") as client:
        records = [
            {"type": "user", "user_id": USER},
            {"type": "document", "user_id": USER, "doc_id": "d1", "text": "I bake bread daily"},
            {"type": "document", "user_id": USER, "doc_id": "d2", "text": "rye needs patience"},
        ]
        assert client.post("/records", json={"records": records}).status_code == 200
        trained = client.post(f"/users/{USER}/train", json={"method": "lora", "steps": 2})
        assert poll(client, trained.json()["job_id"])["status"] == "succeeded"
        fresh = _generate(server)
        assert fresh["details"]["adapter"] == f"lora-{USER}"
        assert "stale_adapter" not in fresh["details"]
        new = {"type": "document", "user_id": USER, "doc_id": "d3", "text": "a new loaf"}
        assert client.post("/records", json={"records": [new]}).status_code == 200

    with ThreadPoolExecutor(4) as pool:  # several requests meet the stale adapter at once
        answers = list(pool.map(lambda _: _generate(server), range(4)))
    stale = [a for a in answers if a["details"].get("stale_adapter") == "lora"]
    assert stale, answers  # the first, at least, was served stale (the rest maybe retrained)
    for answer in stale:
        assert answer["details"]["adapter"] == f"lora-{USER}"  # served, not refused
        assert any(
            "is stale" in n and "served as it is" in n for n in answer["provenance"]["notes"]
        )
    retrains = _retrains(server)
    assert len(retrains) == 2, retrains  # the first training, and one retrain: not one per request
    with server.client("acme") as client:
        assert poll(client, retrains[-1]["job_id"])["status"] == "succeeded"
    again = _generate(server)  # retrained: current again, and no further job
    assert "stale_adapter" not in again["details"] and again["details"]["adapter"]
    assert not any("stale" in n for n in again["provenance"]["notes"])
    assert len(_retrains(server)) == 2
