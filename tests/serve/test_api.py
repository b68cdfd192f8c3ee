"""The REST routes against a real server: auth, records, users, search, generation with
provenance, feedback, outputs, export, uploads, jobs, limits, deletion."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
from PIL import Image

from pgen.serve.errors import NOT_FOUND_BODY
from tests.serve.server import Running


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_ready_and_the_openapi_schema(server: Running) -> None:
    with server.client() as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json()["ready"] is True
        paths = client.get("/openapi.json").json()["paths"]
    for path in ("/records", "/users/{user_id}/generate", "/v1/chat/completions", "/jobs/{job_id}"):
        assert path in paths


def test_keys_are_needed_valid_and_of_the_right_kind(server: Running) -> None:
    with server.client() as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": "pgen_x_y"}):
            response = client.get("/users", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
        # The same key through X-API-Key works; an admin key reaches no tenant's users.
        assert client.get("/users", headers={"X-API-Key": server.keys["acme"]}).status_code == 200
        admin = {"Authorization": f"Bearer {server.keys['admin']}"}
        assert client.get("/users", headers=admin).status_code == 403
        tenant = {"Authorization": f"Bearer {server.keys['acme']}"}
        assert client.get("/admin/keys", headers=tenant).status_code == 403
        # Admin: create a key, use it, revoke it, and it stops working at once.
        made = client.post("/admin/keys", json={"tenant": "acme", "name": "ci"}, headers=admin)
        assert made.status_code == 201
        fresh = {"Authorization": f"Bearer {made.json()['key']}"}
        assert client.get("/users", headers=fresh).status_code == 200
        listed = client.get("/admin/keys", headers=admin).json()
        assert made.json()["key_id"] in [k["key_id"] for k in listed]
        assert all("digest" not in k and "key" not in k for k in listed)  # no secret listed
        assert client.delete(f"/admin/keys/{made.json()['key_id']}", headers=admin).is_success
        assert client.get("/users", headers=fresh).status_code == 401


def test_users_are_listed_with_pagination_and_shown(server: Running) -> None:
    with server.client("acme") as client:
        everyone = [u["user_id"] for u in client.get("/users").json()["users"]]
        assert set(everyone) >= {"alice", "acme-bob"} and "globex-bob" not in everyone
        page = client.get("/users", params={"offset": 1, "limit": 1}).json()["users"]
        assert [u["user_id"] for u in page] == everyone[1:2]
        view = client.get("/users/alice", params={"limit": 2}).json()
        assert view["total_documents"] == 3 and len(view["documents"]) == 2
        assert view["user"]["profile"]["secret"] == "zanzibar-acme-7731"
        assert client.get("/users", params={"limit": 0}).status_code == 422


def test_bad_records_name_the_record_and_field_and_write_nothing(server: Running) -> None:
    with server.client("acme") as client:
        records = [
            {"type": "user", "user_id": "carol"},
            {"type": "document", "user_id": "carol", "doc_id": "c1"},  # no text
        ]
        response = client.post("/records", json={"records": records})
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["where"] == "records:2" and "text" in error["problem"]
        assert client.get("/users/carol").status_code == 404  # the user line was not written
        # A path on the server's disk is refused: images arrive as uploads.
        subject = {"type": "subject", "user_id": "alice", "name": "rex", "class_word": "dog"}
        response = client.post(
            "/records", json={"records": [{**subject, "image_paths": ["/etc/passwd"]}]}
        )
        assert response.status_code == 422 and "upload" in response.json()["error"]["problem"]
        # JSONL upload: the same checks, line numbers of the file.
        body = b'{"type": "user", "user_id": "carol"}\n{"type": "nope"}\n'
        response = client.post("/records/jsonl", files={"file": ("c.jsonl", body)})
        assert response.status_code == 422 and response.json()["error"]["where"] == "c.jsonl:2"
        good = b'{"type": "user", "user_id": "carol"}\n{"type": "document", "user_id": "carol", "doc_id": "c1", "text": "hi"}\n'
        response = client.post("/records/jsonl", files={"file": ("c.jsonl", good)})
        assert response.json() == {"seen": {"document": 1, "user": 1}, "written": 2}


def test_uploaded_images_become_the_subject_references(server: Running) -> None:
    with server.client("acme") as client:
        assert (
            client.post("/users/nobody/uploads", files={"file": ("a.png", png())}).json()
            == NOT_FOUND_BODY
        )
        bad = client.post("/users/acme-bob/uploads", files={"file": ("a.png", b"not an image")})
        assert bad.status_code == 422
        ref = client.post("/users/acme-bob/uploads", files={"file": ("a.png", png())}).json()["ref"]
        subject = {"type": "subject", "user_id": "acme-bob", "name": "rex", "class_word": "dog"}
        response = client.post("/records", json={"records": [{**subject, "image_paths": [ref]}]})
        assert response.status_code == 200, response.text
        subjects = client.get("/users/acme-bob").json()["subjects"]
        assert subjects[0]["name"] == "rex" and subjects[0]["image_paths"][0].endswith(".png")
        # A catalog item's image: uploaded to the tenant's catalog, named by its ref.
        item_ref = client.post("/uploads", files={"file": ("i.png", png())}).json()["ref"]
        item = {"type": "item", "item_id": "i9", "title": "Lamp", "image_path": item_ref}
        assert client.post("/records", json={"records": [item]}).status_code == 200
        with server.client("globex") as other:  # another tenant's catalog upload: unknown
            response = other.post("/records", json={"records": [item]})
            assert response.status_code == 422 and "catalog upload" in response.text
        # Another user cannot name bob's upload.
        other = {**subject, "user_id": "alice", "image_paths": [ref]}
        assert client.post("/records", json={"records": [other]}).status_code == 422
        # A photo document's image: the user's own upload too, never a path on the server.
        photo = {"type": "document", "user_id": "acme-bob", "doc_id": "p1", "kind": "photo"}
        photo["text"] = ""
        made = client.post("/records", json={"records": [{**photo, "fields": {"image_path": ref}}]})
        assert made.status_code == 200, made.text
        (stored,) = [
            d for d in client.get("/users/acme-bob").json()["documents"] if d["doc_id"] == "p1"
        ]
        assert stored["fields"]["image_path"] == subjects[0]["image_paths"][0]  # the upload's file
        for value in ("/etc/passwd", subjects[0]["image_paths"][0]):
            refused = client.post(
                "/records", json={"records": [{**photo, "fields": {"image_path": value}}]}
            )
            problem = refused.json()["error"]["problem"]
            assert refused.status_code == 422 and problem.startswith("field 'fields.image_path'")
        alices = {**photo, "user_id": "alice", "fields": {"image_path": ref}}
        refused = client.post("/records", json={"records": [alices]})
        assert refused.status_code == 422 and "no upload" in refused.json()["error"]["problem"]


def test_search_and_generate_with_provenance(server: Running) -> None:
    with server.client("acme") as client:
        hits = client.post("/users/alice/search", json={"query": "battery screen", "k": 2}).json()
        assert hits[0]["document"]["doc_id"] == "a2" and len(hits) == 2
        result = client.post(
            "/users/alice/generate",
            json={"instruction": "write about my battery", "strategy": "rag", "k": 2},
        ).json()
        assert result["output_id"] and result["strategy"] == "rag"
        assert result["provenance"]["documents"][0] == "a2"
        assert result["provenance"]["model"].startswith("tiny-llama")
        assert result["prompt"][-1]["role"] == "user"  # the chat the model was given
        outputs = client.get("/users/alice/outputs").json()
        assert result["output_id"] in [o["output_id"] for o in outputs]
        side = client.post(
            "/users/alice/compare", json={"instruction": "battery", "strategies": ["none", "rag"]}
        ).json()["results"]
        assert [r["strategy"] for r in side] == ["none", "rag"]
        assert side[0]["provenance"]["documents"] == [] and side[1]["provenance"]["documents"]
        bad = client.post("/users/alice/generate", json={"instruction": "x", "strategy": "nope"})
        assert bad.status_code == 422 and "strategy" in bad.json()["error"]["message"]


def test_feedback_is_stored_exported_and_feeds_the_recommender(server: Running) -> None:
    with server.client("acme") as client:
        output = client.post("/users/alice/generate", json={"instruction": "hello"}).json()
        up = client.post(
            "/users/alice/feedback", json={"output_id": output["output_id"], "thumbs": 1}
        )
        assert up.status_code == 200 and up.json()["thumbs"] == 1
        pair = {"prompt": "p", "chosen": "good", "rejected": "bad"}
        assert client.post("/users/alice/feedback", json=pair).status_code == 200
        item = client.post("/users/alice/feedback", json={"item_id": "i2", "thumbs": -1})
        assert item.json()["action"] == "thumbs_down"
        # Someone else's output id (bob's) is "not found", like an unknown one.
        bobs = client.post("/users/acme-bob/generate", json={"instruction": "hi"}).json()
        stolen = client.post(
            "/users/alice/feedback", json={"output_id": bobs["output_id"], "thumbs": 1}
        )
        assert stolen.status_code == 404 and stolen.json() == NOT_FOUND_BODY
        exported = client.get("/users/alice/export").json()
        assert {f.get("output_id") for f in exported["feedback"]} >= {output["output_id"]}
        assert any(f["chosen"] == "good" for f in exported["feedback"])
        assert any(i["action"] == "thumbs_down" for i in exported["interactions"])
        assert len(client.get("/users/alice/feedback").json()) >= 2


def poll(client: httpx.Client, job_id: str, seconds: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_training_runs_as_a_job_then_recommends(server: Running) -> None:
    with server.client("acme") as client:
        started = client.post("/recommenders/train", json={"model": "pop"})
        assert started.status_code == 202 and started.json()["status"] in (
            "queued",
            "running",
            "succeeded",
        )
        job = poll(client, started.json()["job_id"])
        assert job["status"] == "succeeded", job
        assert started.json()["job_id"] in [j["job_id"] for j in client.get("/jobs").json()]
        ranked = client.get("/users/alice/recommendations", params={"k": 2}).json()
        assert ranked and "i1" not in [r["item"]["item_id"] for r in ranked]  # unseen only
        # The other tenant cannot see, or cancel, this tenant's job.
        with server.client("globex") as other:
            assert other.get(f"/jobs/{job['job_id']}").json() == NOT_FOUND_BODY
            assert other.delete(f"/jobs/{job['job_id']}").json() == NOT_FOUND_BODY
        assert client.post("/users/alice/train", json={"method": "nope"}).status_code == 422
        assert client.post("/users/nobody/train", json={"method": "lora"}).status_code == 404


def test_the_body_size_limit(server: Running) -> None:
    limit = server.config.serve_max_body_mb * 1024 * 1024
    with server.client("acme") as client:
        response = client.post(
            "/records", content=b"x" * (limit + 1), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"

        def chunks() -> Any:  # no Content-Length: counted as it arrives
            for _ in range(limit // (1 << 20) + 2):
                yield b" " * (1 << 20)

        response = client.post(
            "/records", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413


def test_delete_user_then_it_answers_like_an_unknown_one(server: Running) -> None:
    with server.client("acme") as client:
        records = [
            {"type": "user", "user_id": "dave"},
            {"type": "document", "user_id": "dave", "doc_id": "d1", "text": "dave was here"},
        ]
        assert client.post("/records", json={"records": records}).status_code == 200
        client.post("/users/dave/generate", json={"instruction": "hi"})
        deleted = client.delete("/users/dave").json()
        assert deleted["deleted"] and deleted["counts"]["documents"] == 1
        for method, path in [
            ("GET", "/users/dave"),
            ("GET", "/users/dave/outputs"),
            ("DELETE", "/users/dave"),
        ]:
            gone = client.request(method, path)
            unknown = client.request(method, path.replace("dave", "never-was"))
            assert gone.status_code == unknown.status_code == 404
            assert gone.content == unknown.content


def test_user_ids_with_url_characters_reach_every_user_route(server: Running) -> None:
    """An id with ``/``, ``%``, ``?``, ``#``, a space and non-ASCII is one percent-encoded
    segment on every user route; the same characters unencoded never reach it."""
    from urllib.parse import quote

    odd = "team/ana 50%2F?#é"
    path = f"/users/{quote(odd, safe='')}"
    with server.client("acme") as client:
        records = [
            {"type": "user", "user_id": odd, "profile": {"k": "v"}},
            {"type": "document", "user_id": odd, "doc_id": "o1", "text": "I hike in the rain"},
            {"type": "document", "user_id": odd, "doc_id": "o2", "text": "my dog likes snow"},
            {"type": "interaction", "user_id": odd, "item_id": "i1", "action": "buy"},
        ]
        assert client.post("/records", json={"records": records}).status_code == 200
        assert client.get(path).json()["user"]["user_id"] == odd
        hits = client.post(f"{path}/search", json={"query": "hike rain", "k": 1}).json()
        assert hits[0]["document"]["doc_id"] == "o1"
        made = client.post(f"{path}/generate", json={"instruction": "hello"}).json()
        assert made["user_id"] == odd
        side = client.post(f"{path}/compare", json={"instruction": "hello"}).json()
        assert [r["user_id"] for r in side["results"]] == [odd, odd]
        outputs = client.get(f"{path}/outputs").json()
        assert made["output_id"] in [o["output_id"] for o in outputs] and len(outputs) == 3
        thumbs = {"output_id": made["output_id"], "thumbs": 1}
        assert client.post(f"{path}/feedback", json=thumbs).json()["user_id"] == odd
        assert client.get(f"{path}/feedback").json()[0]["output_id"] == made["output_id"]
        assert client.post(f"{path}/uploads", files={"file": ("a.png", png())}).is_success
        unknown_image = client.get(f"{path}/outputs/{made['output_id']}/images/0")
        assert unknown_image.status_code == 404  # a text output has no image
        job = client.post("/recommenders/train", json={"model": "pop"}).json()["job_id"]
        assert poll(client, job)["status"] == "succeeded"
        assert client.get(f"{path}/recommendations", params={"k": 2}).status_code == 200
        trained = client.post(f"{path}/train", json={"method": "lora", "steps": 1})
        assert poll(client, trained.json()["job_id"])["status"] == "succeeded"
        assert trained.json()["user_id"] == odd
        image = client.post(f"{path}/images", json={"instruction": "a dog", "steps": 1})
        assert image.status_code != 404  # the user is found (this server has no image model)
        exported = client.get(f"{path}/export").json()
        assert exported["user"]["user_id"] == odd and len(exported["documents"]) == 2
        assert [a["kind"] for a in exported["artifacts"]] == ["lora", "uploads"]
        # Unencoded, "/" is a separator: the path names no user (and nothing leaks).
        for wrong in ("/users/team/ana%2050%25%2F%3F%23%C3%A9", "/users/team"):
            assert client.get(wrong).json() == NOT_FOUND_BODY
        assert client.delete(path).json()["deleted"] is True
        assert client.get(path).json() == NOT_FOUND_BODY
