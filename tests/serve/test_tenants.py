"""Tenants are walls: 1,000 randomized requests with one tenant's key at another tenant's
users, outputs, jobs and uploads, over every route: zero successes, zero leaks, and each
answer byte-identical to the answer for something that never existed."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgen.models.text import TransformersTextModel
from pgen.serve.errors import NOT_FOUND_BODY, error_body
from pgen.serve.openai import UNKNOWN_USER
from tests.serve.conftest import CANARY
from tests.serve.server import Running, serve_in_thread, service_config
from tests.serve.test_api import png, poll


def acme_targets(client: httpx.Client) -> dict[str, list[str]]:
    """Things only acme has: users, outputs, a job, an upload."""
    users = [f"acme-only-{n}" for n in range(3)]
    records: list[dict[str, Any]] = []
    for user in users:
        records += [
            {"type": "user", "user_id": user, "profile": {"secret": CANARY["acme"]}},
            {"type": "document", "user_id": user, "doc_id": "x", "text": CANARY["acme"]},
        ]
    assert client.post("/records", json={"records": records}).status_code == 200
    outputs = [
        client.post(f"/users/{user}/generate", json={"instruction": "hi"}).json()["output_id"]
        for user in [*users, "alice"]
    ]
    job = client.post("/recommenders/train", json={"model": "pop"}).json()["job_id"]
    poll(client, job)
    upload = client.post(f"/users/{users[0]}/uploads", files={"file": ("a.png", png())})
    return {
        "users": [*users, "acme-bob"],
        "outputs": outputs,
        "jobs": [job],
        "uploads": [upload.json()["ref"]],
    }


def random_request(rng: random.Random, targets: dict[str, list[str]], unknown: bool) -> Any:
    """(method, path, options) aimed at acme's things, or at never-seen ids if ``unknown``."""
    fake = f"never-{rng.randrange(10**9)}"

    def pick(kind: str) -> str:
        chosen = rng.choice(targets[kind])  # drawn either way: both ask the same route
        return fake if unknown else chosen

    user, output, job = pick("users"), pick("outputs"), pick("jobs")
    body_user = rng.choice([user, "alice"])  # alice: globex has one too (its own)
    choices: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/users/{user}", {"params": {"limit": rng.randint(1, 50)}}),
        ("GET", f"/users/{user}/export", {}),
        ("GET", f"/users/{user}/outputs", {}),
        ("GET", f"/users/{user}/feedback", {}),
        ("GET", f"/users/{user}/recommendations", {"params": {"k": rng.randint(1, 5)}}),
        ("DELETE", f"/users/{user}", {}),
        ("POST", f"/users/{user}/search", {"json": {"query": rng.choice(["hike", "battery"])}}),
        (
            "POST",
            f"/users/{user}/generate",
            {
                "json": {
                    "instruction": "tell me",
                    "strategy": rng.choice(["rag", "none", "profile"]),
                }
            },
        ),
        ("POST", f"/users/{user}/compare", {"json": {"instruction": "tell me"}}),
        ("POST", f"/users/{user}/images", {"json": {"instruction": "a photo"}}),
        ("POST", f"/users/{user}/train", {"json": {"method": rng.choice(["lora", "dpo"])}}),
        ("POST", f"/users/{user}/uploads", {"files": {"file": ("a.png", png())}}),
        ("POST", f"/users/{user}/feedback", {"json": {"output_id": output, "thumbs": 1}}),
        ("POST", f"/users/{body_user}/feedback", {"json": {"output_id": output, "thumbs": -1}}),
        ("GET", f"/users/{body_user}/outputs/{output}/images/0", {}),
        ("GET", f"/jobs/{job}", {}),
        ("DELETE", f"/jobs/{job}", {}),
        (
            "POST",
            "/v1/chat/completions",
            {
                "json": {
                    "model": "pgen/rag",
                    "user": user,
                    "messages": [{"role": "user", "content": "hi"}],
                }
            },
        ),
    ]
    return rng.choice(choices)


def not_found_body(path: str) -> dict[str, Any]:
    """The one not-found body; the chat endpoint explains an unknown user (to an OpenAI
    client, a bare "not found" says nothing), in the same bytes for every such user."""
    if path == "/v1/chat/completions":
        return error_body("user_not_found", UNKNOWN_USER)
    return NOT_FOUND_BODY


@pytest.fixture(params=["sqlite", "postgres"])
def any_server(request: pytest.FixtureRequest) -> Running:
    """The module's server (a SQLite file per tenant) or one on Postgres (a schema each)."""
    name = "server" if request.param == "sqlite" else "postgres_tenants_server"
    running: Running = request.getfixturevalue(name)
    return running


def test_a_thousand_cross_tenant_requests_find_nothing(any_server: Running) -> None:
    server = any_server
    rng = random.Random(14)
    with server.client("acme") as acme, server.client("globex") as globex:
        targets = acme_targets(acme)
        before = {user: acme.get(f"/users/{user}/export").content for user in targets["users"]}
        leaks = [CANARY["acme"], *targets["outputs"], *targets["users"], *targets["jobs"]]
        statuses: dict[int, int] = {}
        for _ in range(1000):
            method, path, options = random_request(rng, targets, unknown=False)
            response = globex.request(method, path, **options)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code == 404, (method, path, response.text)
            assert response.json() == not_found_body(path), (method, path, response.text)
            # The only difference from an unknown id: the id in the path, never echoed.
            assert not any(secret in response.text for secret in leaks)
        assert statuses == {404: 1000}
        # Reads of globex's own alice, and the user list, show nothing of acme's.
        for path in ("/users", "/users/alice", "/users/alice/export", "/users/alice/outputs"):
            text = globex.get(path).text
            assert not any(secret in text for secret in leaks), path
        search = globex.post("/users/alice/search", json={"query": "hike mountains", "k": 10})
        assert CANARY["globex"] in search.text and CANARY["acme"] not in search.text
        # An acme upload cannot be named in a globex record.
        subject = {"type": "subject", "user_id": "alice", "name": "x", "class_word": "dog"}
        stolen = globex.post(
            "/records", json={"records": [{**subject, "image_paths": targets["uploads"]}]}
        )
        assert stolen.status_code == 422 and CANARY["acme"] not in stolen.text
        # Nothing of acme's changed (the DELETEs and feedback above did nothing).
        after = {user: acme.get(f"/users/{user}/export").content for user in targets["users"]}
        assert after == before


def test_foreign_and_unknown_ids_answer_the_same_bytes(server: Running) -> None:
    """Per route: the answer for acme's id and for an id that never existed are equal."""
    with server.client("acme") as acme, server.client("globex") as globex:
        targets = {
            "users": ["acme-bob"],
            "outputs": [acme.get("/users/alice/outputs").json()[0]["output_id"]],
            "jobs": [acme.get("/jobs").json()[0]["job_id"]],
        }
        for seed in range(60):
            foreign = random_request(random.Random(seed), targets, unknown=False)
            unknown = random_request(random.Random(seed), targets, unknown=True)
            a = globex.request(foreign[0], foreign[1], **foreign[2])
            b = globex.request(unknown[0], unknown[1], **unknown[2])
            assert (a.status_code, a.content) == (b.status_code, b.content), foreign[1]
            assert json.loads(a.content) == not_found_body(foreign[1])


def settled(check: Any) -> None:
    """A request lets its engine go just after its answer is sent: wait for that (the
    deadline only keeps a broken build from hanging)."""
    deadline = time.monotonic() + 120
    while not check():
        assert time.monotonic() < deadline, "the tenants never settled"
        time.sleep(0.01)


def test_open_engines_are_bounded_and_a_held_one_is_never_closed(
    tmp_path: Path, tiny_llama: Path, serve_model: TransformersTextModel
) -> None:
    """Bound 2, five tenants: at most two stores stay open, the least recently used goes,
    an engine held by a request in flight stays open past the bound, and an evicted
    tenant's data is all there when it is opened again."""
    names = tuple(f"t{n}" for n in range(5))
    config = service_config(tmp_path, tiny_llama, serve_max_tenants=2)
    with serve_in_thread(config, names, text_model=serve_model) as running:
        tenants = running.app.state.service.tenants
        for name in names:
            with running.client(name) as client:
                records = [{"type": "user", "user_id": f"{name}-user"}]
                assert client.post("/records", json={"records": records}).status_code == 200
            settled(lambda: len(tenants.open_tenants()) <= 2)
        settled(lambda: tenants.open_tenants() == ["t3", "t4"] and tenants.evicted == 3)
        # t0 and t1 held (as running jobs hold their tenant's engines): requests of
        # others open theirs past the bound, and those close when the request ends.
        held = [tenants.acquire("t0"), tenants.acquire("t1")]
        assert tenants.open_tenants() == ["t0", "t1"]
        for name in ("t2", "t3", "t4"):
            with running.client(name) as client:
                assert client.get(f"/users/{name}-user").status_code == 200
            settled(lambda: tenants.open_tenants() == ["t0", "t1"])
        assert held[0].has_user("t0-user") and held[1].has_user("t1-user")  # still open
        tenants.release("t0")
        tenants.release("t1")
        for name in names:  # every evicted tenant reopens with its data
            with running.client(name) as client:
                users = [u["user_id"] for u in client.get("/users").json()["users"]]
                assert users == [f"{name}-user"]


def test_a_postgres_store_gives_each_tenant_its_own_schema(tmp_path: Path) -> None:
    from dataclasses import fields

    from pgen.config import Config
    from pgen.serve.app import _is_path, config_to_env
    from pgen.serve.tenants import tenant_schema, tenant_store_config

    url = "postgresql://pgen@127.0.0.1:5/db"
    config = Config(home=tmp_path, store=url)
    acme = tenant_store_config(config, "acme", tmp_path / "tenants" / "acme")
    assert acme.store == {
        "provider": "postgres",
        "settings": {
            "url": url,
            "schema": tenant_schema("acme"),
            "artifacts": str(tmp_path / "tenants" / "acme" / "artifacts"),
        },
    }
    assert tenant_schema("a-b") != tenant_schema("a_b")  # never one schema for two tenants
    # A worker process gets the URL back as it was (not made a path).
    values = json.loads(config_to_env(config))
    assert {f.name for f in fields(Config)} == set(values)
    assert not _is_path("store", values["store"]) and _is_path("store", "/x/pgen.sqlite")
