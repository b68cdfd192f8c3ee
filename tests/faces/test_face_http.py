"""Searching a user's photos by a person's name over HTTP (``POST
/users/{user_id}/photos/search``), with dlib's real face models on real photos, through a
real server: group photos included, and one tenant's people never reach another's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.serve.server import serve_in_thread, service_config

PHOTOS = ("anna_photo", "grace_photo", "group", "coffee")


def _upload(client: httpx.Client, path: Path) -> str:
    answer = client.post("/users/u1/uploads", files={"file": (path.name, path.read_bytes())})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["ref"])


def _add(client: httpx.Client, photos: dict[str, Path], people: dict[str, list[str]]) -> None:
    """User u1 with ``people`` (name -> reference photos) and the photos to search, every
    image uploaded first (over HTTP an image is never a path on the server)."""
    user = client.post("/records", json={"records": [{"type": "user", "user_id": "u1"}]})
    assert user.status_code == 200, user.text
    records: list[dict[str, Any]] = []
    for name, refs in people.items():
        paths = [_upload(client, photos[r]) for r in refs]
        records.append(
            {
                "type": "subject",
                "user_id": "u1",
                "name": name,
                "class_word": "person",
                "image_paths": paths,
            }
        )
    for doc in PHOTOS:
        fields = {"image_path": _upload(client, photos[doc])}
        records.append(
            {
                "type": "document",
                "user_id": "u1",
                "doc_id": doc,
                "kind": "photo",
                "text": "",
                "fields": fields,
            }
        )
    added = client.post("/records", json={"records": records})
    assert added.status_code == 200, added.text


def _search(client: httpx.Client, query: str, user: str = "u1") -> httpx.Response:
    return client.post(f"/users/{user}/photos/search", json={"query": query})


def _found(client: httpx.Client, query: str) -> list[str]:
    answer = _search(client, query)
    assert answer.status_code == 200, answer.text
    return sorted(hit["doc_id"] for hit in answer.json()["hits"])


def test_search_photos_by_a_persons_name_over_http(
    tmp_path: Path,
    tiny_llama: Path,
    photos: dict[str, Path],
) -> None:
    config = service_config(tmp_path / "serve", tiny_llama)
    people = {"Anna": ["anna_1", "anna_2"], "Grace": ["grace_1", "grace_2"]}
    with (
        serve_in_thread(config, tenants=("acme", "globex")) as running,
        running.client("acme") as acme,
        running.client("globex") as globex,
    ):
        # Before globex has any user: acme's data is not there to find.
        missing = _search(globex, "Anna")
        assert missing.status_code == 404 and "hits" not in missing.json()

        _add(acme, photos, people)
        answer = _search(acme, "Anna")
        assert answer.status_code == 200, answer.text
        hits = answer.json()["hits"]
        assert sorted(h["doc_id"] for h in hits) == ["anna_photo", "group"]
        for hit in hits:
            assert isinstance(hit["score"], float) and hit["concepts"]["Anna"] >= 0.5
        assert answer.json()["unused_words"] == ""
        assert _found(acme, "photos of Grace") == ["grace_photo", "group"]
        assert _found(acme, "Anna and Grace") == ["group"]
        limited = acme.post("/users/u1/photos/search", json={"query": "Anna", "k": 1}).json()
        assert len(limited["hits"]) == 1

        # Globex's own u1, with the same photos and no people: acme's Anna is unknown.
        _add(globex, photos, {})
        refused = _search(globex, "Anna")
        assert refused.status_code == 422
        assert "names none of the user's concepts (none)" in refused.json()["error"]["message"]
        # Globex's "Anna" is whoever globex says: here Grace's face, so Grace's photos.
        _add(globex, photos, {"Anna": people["Grace"]})
        assert _found(globex, "Anna") == ["grace_photo", "group"]
        assert _found(acme, "Anna") == ["anna_photo", "group"]  # acme's Anna unchanged

        # Bad requests: one line each, nothing found.
        assert _search(acme, "Anna", user="nobody").status_code == 404
        empty = acme.post("/users/u1/photos/search", json={"query": ""})
        assert empty.status_code == 422


def test_face_id_over_http_refuses_in_one_line_and_keeps_to_the_tenant(
    tmp_path: Path, tiny_llama: Path, photos: dict[str, Path]
) -> None:
    """``face-id`` is a strategy name over HTTP like the others, with the default weights
    (h94's FaceID from the local Hub cache, absent here): a clear 422, not a server fault;
    another tenant's user of the same name has no such person."""
    from tests.builders.image_models import random_sd_pipeline

    random_sd_pipeline("tiny").save_pretrained(tmp_path / "tiny-sd")
    config = service_config(tmp_path / "serve", tiny_llama, image_model=str(tmp_path / "tiny-sd"))
    body = {"instruction": "Anna at the beach", "strategy": "face-id", "steps": 1}
    with (
        serve_in_thread(config, tenants=("acme", "globex")) as running,
        running.client("acme") as acme,
        running.client("globex") as globex,
    ):
        _add(acme, photos, {"Anna": ["anna_1", "anna_2"]})
        made = acme.post("/users/u1/images", json=body)
        assert made.status_code == 422, made.text
        error = made.json()["error"]["message"]
        assert "FaceID weights h94/IP-Adapter-FaceID" in error and "\n" not in error
        user = globex.post("/records", json={"records": [{"type": "user", "user_id": "u1"}]})
        assert user.status_code == 200
        theirs = globex.post("/users/u1/images", json=body)
        assert theirs.status_code == 422 and "names none of user 'u1'" in theirs.text
