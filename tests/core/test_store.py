from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from pgen.context import Document, Feedback, Interaction, Item, Subject, User
from pgen.context.base import UserNotFoundError
from pgen.context.sqlite import SQLiteStore
from pgen.context.sqlite.schema import SCHEMA_VERSION
from tests.core.conftest import docs


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with SQLiteStore(path) as first:
        first.add(docs("u", "hello world"))
    with SQLiteStore(path) as second:
        assert [d.text for d in second.documents("u")] == ["hello world"]
        assert second.schema_version == SCHEMA_VERSION


def test_same_records_twice_write_nothing_the_second_time(store: SQLiteStore) -> None:
    records = [
        User(user_id="u", profile={"age": 30}),
        *docs("u", "a", "b"),
        Item(item_id="i1", title="Alien"),
        Interaction(user_id="u", item_id="i1", rating=5, time=datetime(2020, 1, 1)),
        Subject(user_id="u", name="rex", class_word="dog", image_paths=["rex.jpg"]),
    ]
    first = store.add(records)
    revision = store.revision("u")
    second = store.add(records)
    assert first.written == len(records)  # each record once, whatever rows it touched
    assert second.written == 0
    assert store.revision("u") == revision


def test_revision_changes_only_when_documents_change(store: SQLiteStore) -> None:
    store.add(docs("u", "a"))
    before = store.revision("u")
    store.add([Document(user_id="u", doc_id="d0", text="edited")])
    after = store.revision("u")
    assert (after.incarnation, after.number) == (before.incarnation, before.number + 1)
    assert store.documents("u")[0].text == "edited"


def test_a_user_created_again_is_a_new_incarnation(store: SQLiteStore) -> None:
    store.add(docs("u", "a", "b"))
    old = store.revision("u")
    store.delete_user("u")
    store.add(docs("u", "a", "b"))
    new = store.revision("u")
    # Same number of changes, so only the incarnation tells the two lives apart.
    assert new.number == old.number
    assert new.incarnation != old.incarnation


def test_reads_are_scoped_to_one_user(store: SQLiteStore) -> None:
    store.add([*docs("alice", "alice text", prefix="x"), *docs("bob", "bob text", prefix="x")])
    assert [d.text for d in store.documents("alice")] == ["alice text"]
    # The same doc id under another user is another document.
    assert [d.text for d in store.documents("bob", ["x0"])] == ["bob text"]
    assert store.document_hashes("alice").keys() == {"x0"}
    store.add([Document(user_id="bob", doc_id="p1", kind="photo", text="bob at sea")])
    assert [d.doc_id for d in store.documents("bob", kind="photo")] == ["p1"]
    assert store.documents("alice", kind="photo") == []


def test_feedback_needs_thumbs_or_a_pair() -> None:
    Feedback(user_id="u", feedback_id="f", output_id="o", thumbs=1)
    Feedback(user_id="u", feedback_id="f", chosen="a", rejected="b")
    with pytest.raises(ValueError, match="either output_id with thumbs"):
        Feedback(user_id="u", feedback_id="f", output_id="o")


def test_changed_feedback_replaces_the_old_verdict(store: SQLiteStore) -> None:
    store.add([Feedback(user_id="u", feedback_id="f", output_id="o", thumbs=1)])
    again = store.add([Feedback(user_id="u", feedback_id="f", output_id="o", thumbs=1)])
    assert again.written == 0
    store.add([Feedback(user_id="u", feedback_id="f", output_id="o", thumbs=-1)])
    assert [f.thumbs for f in store.feedback("u")] == [-1]


def test_embeddings_of_another_dimension_are_dropped_not_mixed(store: SQLiteStore) -> None:
    store.add(docs("u", "a", "b"))
    hashes = store.document_hashes("u")
    store.put_embeddings("u", "m", [("d0", hashes["d0"], np.ones(4, dtype=np.float32))])
    assert set(store.embeddings("u", "m", 4)) == {"d0"}
    # The model behind "m" now makes 8-d vectors: the 4-d ones are gone.
    assert store.embeddings("u", "m", 8) == {}
    assert store.embeddings("u", "m", 4) == {}


def test_delete_user_removes_every_row_and_file(store: SQLiteStore) -> None:
    store.add(
        [
            User(user_id="gone", profile={"a": 1}),
            *docs("gone", "one", "two"),
            *docs("kept", "three"),
            Item(item_id="i"),
            Interaction(user_id="gone", item_id="i", rating=4),
            Subject(user_id="gone", name="rex", class_word="dog", image_paths=["x.jpg"]),
            Feedback(user_id="gone", feedback_id="f", chosen="a", rejected="b"),
        ]
    )
    digest = store.document_hashes("gone")["d0"]
    store.put_embeddings("gone", "m", [("d0", digest, np.ones(3, dtype=np.float32))])
    store.put_summary("gone", "k", "h", "likes things")
    store.save_output("gone", "say hi", "rag", "hi", {"documents": ["d0"]})
    adapter = store.artifact_path("gone", "lora", "default")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")

    counts = store.delete_user("gone")

    assert counts["documents"] == 2 and counts["embeddings"] == 1 and counts["files"] == 1
    assert not store.has_user("gone") and store.documents("gone") == []
    assert store.outputs("gone") == [] and store.summary("gone", "k", "h") is None
    assert store.embeddings("gone", "m", 3) == {} and store.artifacts("gone") == {}
    assert not adapter.exists()
    assert [d.text for d in store.documents("kept")] == ["three"]
    assert store.items()[0].item_id == "i"  # the catalog is not the user's
    with pytest.raises(UserNotFoundError):
        store.delete_user("gone")


def test_artifacts_need_an_existing_user(store: SQLiteStore) -> None:
    with pytest.raises(UserNotFoundError, match="no user 'nobody'"):
        store.artifact_path("nobody", "lora", "x")


def test_recent_documents_newest_first_undated_last(store: SQLiteStore) -> None:
    store.add(
        [
            Document(user_id="u", doc_id="old", text="a", time=datetime(2020, 1, 1)),
            Document(user_id="u", doc_id="undated", text="b"),
            Document(user_id="u", doc_id="new", text="c", time=datetime(2024, 1, 1)),
        ]
    )
    assert store.recent_doc_ids("u", 3) == ["new", "old", "undated"]
    assert store.recent_doc_ids("u", 1) == ["new"]


def test_document_changes_report_only_what_changed_since_a_revision(store: SQLiteStore) -> None:
    store.add(docs("u", "a", "b", "c"))
    seen = store.revision("u")
    store.add([Document(user_id="u", doc_id="d1", text="b edited"), *docs("u", "a")])  # d0 same
    store.delete_documents("u", ["d2"])
    changed, deleted = store.document_changes("u", seen.number)
    assert set(changed) == {"d1"} and deleted == ["d2"]
    assert store.document_changes("u", store.revision("u").number) == ({}, [])
