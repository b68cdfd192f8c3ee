"""Face subjects end to end on real photos and dlib's real models: a user's people
(subjects of class ``person``) in their photos, group photos included; ``ask`` naming who is
where; bad references refused with nothing written; and delete-user leaving no face."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pgen.context.records import Document, Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.face import DlibFaceEmbedder
from pgen.models.vision import OpenAIVisionModel
from pgen.usermodel.faces import FaceError
from pgen.usermodel.photo_memory import PhotoMemory
from tests.multimodal.conftest import RecordingServer, vlm_server

from .conftest import CountingFaces

__all__ = ["vlm_server"]  # the multimodal tests' loopback VLM server, as a fixture here


class NoImageEmbedder:
    """People go by face: the whole-image embedder must not be used for them."""

    model_id, dim = "unused#0", 4

    def embed(self, images: list[Any]) -> np.ndarray:
        raise AssertionError("a person subject went through the image embedder")


def _store(home: Path, photos: dict[str, Path], people: dict[str, list[str]]) -> SQLiteStore:
    store = SQLiteStore(home / "pgen.sqlite")
    records: list[Any] = [User(user_id="u1"), User(user_id="u2")]
    for name, refs in people.items():
        paths = [str(photos[r]) for r in refs]
        records.append(Subject(user_id="u1", name=name, class_word="person", image_paths=paths))
    for user in ("u1", "u2"):
        for doc in ("anna_photo", "grace_photo", "group", "coffee"):
            fields = {"image_path": str(photos[doc])}
            records.append(Document(user_id=user, doc_id=doc, kind="photo", text="", fields=fields))
    store.add(records)
    return store


def _engine(store: SQLiteStore, faces: Any, photos: dict[str, Path], vision: Any = None) -> Engine:
    def no_text_model() -> Any:
        raise AssertionError("these tests use no text model")

    def memory(kept: Any) -> PhotoMemory:
        return PhotoMemory(
            kept,
            lambda: NoImageEmbedder(),  # type: ignore[arg-type, return-value]
            allowed=[photos["group"].parent],
            face_embedder=lambda: faces,
        )

    return Engine(store, no_text_model, no_text_model, vision_model=lambda: vision, photos=memory)


PEOPLE = {"Anna": ["anna_1", "anna_2"], "Grace": ["grace_1", "grace_2"]}


def test_search_finds_a_persons_photos_group_photos_included(
    tmp_path: Path, photos: dict[str, Path], dlib_faces: DlibFaceEmbedder
) -> None:
    counting = CountingFaces(dlib_faces)
    engine = _engine(_store(tmp_path, photos, PEOPLE), counting, photos)
    anna = engine.search_photos("u1", "Anna")
    assert sorted(h.doc_id for h in anna) == ["anna_photo", "group"]
    assert all(h.concepts["Anna"] >= 0.5 for h in anna)
    assert sorted(h.doc_id for h in engine.search_photos("u1", "photos of Grace")) == [
        "grace_photo",
        "group",
    ]
    assert [h.doc_id for h in engine.search_photos("u1", "Anna and Grace")] == ["group"]
    # 4 references and 4 photos were looked at once; later searches read the cache.
    assert counting.calls == 8
    engine.search_photos("u1", "Grace")
    assert counting.calls == 8


def test_people_are_only_the_users_own_named_subjects(
    tmp_path: Path, photos: dict[str, Path], dlib_faces: DlibFaceEmbedder
) -> None:
    engine = _engine(_store(tmp_path, photos, PEOPLE), dlib_faces, photos)
    engine.search_photos("u1", "Anna")
    # u2 holds the same photos but named nobody: Anna is no one to them.
    with pytest.raises(ValueError, match=r"names none of the user's concepts \(none\)"):
        engine.search_photos("u2", "Anna")
    assert engine.store.row_counts("u2").get("image_embeddings", 0) == 0


def test_ask_names_the_people_in_a_photo_and_where_they_are(
    tmp_path: Path,
    photos: dict[str, Path],
    dlib_faces: DlibFaceEmbedder,
    vlm_server: RecordingServer,
) -> None:
    store = _store(tmp_path, photos, PEOPLE)
    without = _engine(store, dlib_faces, photos)
    answer = without.answer("u1", photos["group"], "who is in this photo?")
    assert "your people: Anna (left" in answer.text and "Grace (right" in answer.text
    assert sorted(answer.provenance["subjects"]) == ["Anna", "Grace"]
    vision = OpenAIVisionModel(vlm_server.url, "test-vlm")
    with_vlm = _engine(store, dlib_faces, photos, vision)
    alone = with_vlm.answer("u1", photos["grace_photo"], "what is she wearing?")
    assert "The user's people in this photo: Grace (center)." in alone.text
    assert alone.provenance["subjects"] == ["Grace"]
    nobody = with_vlm.answer("u1", photos["coffee"], "what is this?")
    assert "No face is detected in this photo." in nobody.text


def test_a_reference_without_a_face_is_refused_and_nothing_is_written(
    tmp_path: Path, photos: dict[str, Path], dlib_faces: DlibFaceEmbedder
) -> None:
    people = {"Anna": ["anna_1", "anna_2"], "Bob": ["grace_1", "coffee"]}
    engine = _engine(_store(tmp_path, photos, people), dlib_faces, photos)
    with pytest.raises(FaceError) as refused:
        engine.search_photos("u1", "Anna")
    message = str(refused.value)
    assert "\n" not in message
    assert "subject 'Bob' of user 'u1'" in message and "coffee.png" in message
    assert "shows no face" in message
    assert engine.store.row_counts("u1").get("image_embeddings", 0) == 0


def test_references_of_two_different_people_are_refused(
    tmp_path: Path, photos: dict[str, Path], dlib_faces: DlibFaceEmbedder
) -> None:
    people = {"Anna": ["anna_1", "grace_1"]}
    engine = _engine(_store(tmp_path, photos, people), dlib_faces, photos)
    with pytest.raises(FaceError, match="show different people") as refused:
        engine.answer("u1", photos["group"], "who is here?")
    assert "anna_1.png" in str(refused.value) and "grace_1.png" in str(refused.value)
    assert engine.store.row_counts("u1").get("image_embeddings", 0) == 0


def test_delete_user_leaves_no_face_vector_anywhere(
    tmp_path: Path, photos: dict[str, Path], dlib_faces: DlibFaceEmbedder
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    store = _store(home, photos, PEOPLE)
    engine = _engine(store, dlib_faces, photos)
    engine.search_photos("u1", "Anna")
    engine.answer("u1", photos["group"], "who is here?")
    # u2 keeps their own copy of the same photos' faces: only u1's rows may go.
    engine.store.add(
        [
            Subject(
                user_id="u2", name="Mum", class_word="person", image_paths=[str(photos["grace_1"])]
            )
        ]
    )
    engine.search_photos("u2", "Mum")
    assert engine.store.row_counts("u1")["image_embeddings"] > 0
    kept = engine.store.row_counts("u2")["image_embeddings"]
    anna = dlib_faces.faces(__import__("PIL.Image").Image.open(photos["anna_1"]))[0].vector
    needle = anna.astype(np.float32).tobytes()[:64]
    assert any(needle in p.read_bytes() for p in home.rglob("*") if p.is_file())
    engine.delete_user("u1")
    assert engine.store.row_counts("u1").get("image_embeddings", 0) == 0
    assert engine.store.row_counts("u2")["image_embeddings"] == kept
    engine.close()
    leftover = [p for p in home.rglob("*") if p.is_file() and needle in p.read_bytes()]
    assert leftover == [], "Anna's face vector (only u1 held Anna's reference) is gone"
