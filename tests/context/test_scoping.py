"""Scoping by user: another user's id never returns this user's rows or files."""

from __future__ import annotations

import numpy as np
import pytest

from pgen.context.base import ContextStore, OutputNotFoundError, UserNotFoundError
from tests.context.samples import fill


def test_every_read_is_scoped_by_user(store: ContextStore) -> None:
    fill(store, "ann")
    fill(store, "bob")
    for user, other in [("ann", "bob"), ("bob", "ann")]:
        assert {d.user_id for d in store.documents(user)} == {user}
        assert all(other not in d.text for d in store.documents(user))
        assert all(d.user_id == user for d in store.documents(user, ["d0", "d1"]))
        assert {i.user_id for i in store.interactions(user)} == {user}
        assert {s.user_id for s in store.subjects(user)} == {user}
        assert {f.user_id for f in store.feedback(user)} == {user}
        assert [p.text for p in store.preferences(user)] == [f"{user} avoids nightlife"]
        assert store.preferences(user, ["p1"])[0].user_id == user
        assert store.summary(user, "summary", "hash") == f"{user} likes dogs"
        outputs = store.outputs(user)
        assert [o.user_id for o in outputs] == [user] and user in outputs[0].text
        assert all(other not in path for o in outputs for path in o.media)
        assert set(store.embeddings(user, "m#1", 4)) == {"d0", "d1"}
        assert store.image_embeddings(user, "clip#1", 4, [f"{other}-img"]) == {}
        assert set(store.image_embeddings(user, "clip#1", 4, [f"{user}-img"])) == {f"{user}-img"}
        assert all(user in str(path) for path in store.artifacts(user).values())
        # Another user's output id is "not found", not another user's output.
        with pytest.raises(OutputNotFoundError):
            store.output(user, store.outputs(other)[0].output_id)


def test_an_unknown_user_sees_nothing(store: ContextStore) -> None:
    fill(store, "ann")
    assert store.documents("nobody") == [] and store.interactions("nobody") == []
    assert store.outputs("nobody") == [] and store.artifacts("nobody") == {}
    assert store.embeddings("nobody", "m#1", 4) == {}
    assert store.summary("nobody", "summary", "hash") is None
    with pytest.raises(UserNotFoundError):
        store.user("nobody")
    with pytest.raises(UserNotFoundError):
        store.artifact_path("nobody", "lora", "x")


def test_outputs_keep_their_modality_and_media_in_order(store: ContextStore) -> None:
    fill(store, "ann")
    text = store.save_output("ann", "i", "s", "hello", {})
    assert (text.modality, text.media) == ("text", [])
    paths = [f"/x/{k:02d}.png" for k in range(12)]
    image = store.save_output("ann", "i", "s", "", {}, modality="image", media=paths)
    assert store.output("ann", image.output_id).media == paths
    assert store.output("ann", image.output_id).modality == "image"
    assert store.output("ann", text.output_id).media == []
    assert [o.modality for o in store.outputs("ann")][-2:] == ["text", "image"]


def test_vectors_of_another_fingerprint_are_never_mixed(store: ContextStore) -> None:
    fill(store, "ann")
    vector = np.zeros(4, dtype=np.float32)
    store.put_embeddings("ann", "m#2", [("d0", "h0", vector)])
    assert set(store.embeddings("ann", "m#2", 4)) == {"d0"}  # and m#1's vectors are gone
    assert store.embeddings("ann", "m#1", 4) == {}
    assert set(store.embeddings("ann", "m#2", 2)) == set()  # another dimension: dropped
    assert set(store.embeddings("bob", "m#2", 4)) == set()


def test_preferences_are_written_edited_and_removed_by_user(store: ContextStore) -> None:
    """A preference id is the user's: the same id of another user is another row, and
    removing it for one user leaves the other's; ``add`` of the same id is an edit."""
    from pgen.context.records import Preference

    fill(store, "ann")
    fill(store, "bob")
    assert store.delete_preferences("ann", ["nope"]) == 0
    assert store.delete_preferences("nobody", ["p1"]) == 0
    stats = store.add([Preference(user_id="ann", preference_id="p1", text="ann is vegan")])
    assert stats.written == 1
    (edited,) = store.preferences("ann")
    assert (edited.text, edited.origin, edited.source, edited.start) == (
        "ann is vegan",
        "user",
        None,
        None,
    )
    assert store.add([edited]).written == 0  # the same record again writes nothing
    assert store.preferences("bob")[0].text == "bob avoids nightlife"
    assert store.delete_preferences("ann", ["p1", "p1"]) == 1
    assert store.preferences("ann") == [] and len(store.preferences("bob")) == 1
    assert store.preferences("ann", ["p1"]) == []
