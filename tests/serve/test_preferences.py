"""Stated preferences over HTTP: found in posted chat turns, listed, added, edited and
removed per tenant and user, used in generation; another tenant's or user's preference
is "not found" and nothing is written."""

from __future__ import annotations

from urllib.parse import quote

from pgen.serve.errors import NOT_FOUND_BODY
from tests.serve.server import Running


def test_preferences_over_http_are_the_users_own(server: Running) -> None:
    with server.client("acme") as acme, server.client("globex") as globex:
        turn = {
            "type": "document",
            "user_id": "alice",
            "doc_id": "turn-1",
            "kind": "chat",
            "text": "Plan a trip. I avoid hotels with a bustling nightlife.",
        }
        assert acme.post("/records", json={"records": [turn]}).status_code == 200
        (found,) = acme.get("/users/alice/preferences").json()
        assert found["text"] == "I avoid hotels with a bustling nightlife."
        assert (found["origin"], found["source"]) == ("detected", "turn-1")
        assert turn["text"][found["start"] : found["end"]] == found["text"]  # type: ignore[index]
        assert globex.get("/users/alice/preferences").json() == []  # the other tenant's alice

        added = acme.post("/users/alice/preferences", json={"text": "I am vegetarian"})
        assert added.status_code == 201 and added.json()["origin"] == "user"
        key = quote(added.json()["preference_id"], safe="")
        edited = acme.put(f"/users/alice/preferences/{key}", json={"text": "I am vegan"})
        assert edited.status_code == 200 and edited.json()["text"] == "I am vegan"

        generated = acme.post(
            "/users/alice/generate", json={"instruction": "Suggest a hotel", "strategy": "rag"}
        ).json()
        # The turn it was found in is retrieved, so the detected one is not said twice.
        assert "turn-1" in generated["provenance"]["documents"]
        assert generated["provenance"]["preferences"] == [added.json()["preference_id"]]
        assert "I am vegan" in generated["prompt"][0]["content"]
        baseline = acme.post(
            "/users/alice/generate", json={"instruction": "Suggest a hotel", "strategy": "none"}
        ).json()
        assert baseline["provenance"]["preferences"] == []
        assert all("I am vegan" not in m["content"] for m in baseline["prompt"])

        before = acme.get("/users/alice/preferences").json()
        refused = [
            globex.put(f"/users/alice/preferences/{key}", json={"text": "x"}),  # other tenant
            globex.delete(f"/users/alice/preferences/{key}"),
            acme.put(f"/users/acme-bob/preferences/{key}", json={"text": "x"}),  # other user
            acme.delete(f"/users/acme-bob/preferences/{key}"),
            acme.delete("/users/alice/preferences/pref-unknown"),
            acme.post("/users/nobody/preferences", json={"text": "I like tea"}),
            acme.get("/users/nobody/preferences"),
        ]
        assert [r.status_code for r in refused] == [404] * len(refused)
        assert all(r.json() == NOT_FOUND_BODY for r in refused)
        invalid = [
            acme.post("/users/alice/preferences", json={"text": ""}),
            acme.post("/users/alice/preferences", json={"text": "x" * 2001}),
            acme.post("/users/alice/preferences", json={"text": "ok", "origin": "detected"}),
            acme.put(f"/users/alice/preferences/{key}", json={"text": "   "}),
        ]
        assert [r.status_code for r in invalid] == [422] * len(invalid)
        assert acme.get("/users/alice/preferences").json() == before  # nothing written
        assert acme.get("/users/nobody").status_code == 404

        exported = acme.get("/users/alice/export").json()
        assert {p["text"] for p in exported["preferences"]} == {found["text"], "I am vegan"}
        removed = acme.delete(f"/users/alice/preferences/{key}")
        assert removed.status_code == 200 and removed.json()["removed"]["text"] == "I am vegan"
        assert [p["text"] for p in acme.get("/users/alice/preferences").json()] == [found["text"]]
        assert acme.delete(f"/users/alice/preferences/{key}").status_code == 404
