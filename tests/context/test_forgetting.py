"""Forgetting down to the bytes: delete-user leaves no byte of the user in any file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pgen.context.base import ContextStore, UserNotFoundError
from tests.context.conftest import Backend, traces
from tests.context.samples import fill

GONE = "canaryuser7f3a"


def test_delete_user_removes_rows_vectors_outputs_media_and_files(
    backend: Backend, home: Path, store: ContextStore
) -> None:
    fill(store, GONE)
    fill(store, "kept")
    folders = list(store.artifacts(GONE).values())
    assert traces(backend, home, GONE)  # the check can see them
    held = store.row_counts(GONE)
    assert held["documents"] == 3 and held["outputs"] == 1 and held["output_media"] == 1
    assert store.row_counts("kept") == held  # the same context, counted per user
    counts = store.delete_user(GONE)
    assert not any(store.row_counts(GONE).values())  # nothing of the user in any table
    assert store.row_counts() == store.row_counts("kept")
    assert counts["outputs"] == 1 and counts["output_media"] == 1
    assert counts["embeddings"] == 2 and counts["artifacts"] == 2
    assert counts["preferences"] == 1 and store.preferences(GONE) == []
    assert not store.has_user(GONE) and store.outputs(GONE) == []
    assert store.embeddings(GONE, "m#1", 4) == {} and store.artifacts(GONE) == {}
    assert store.image_embeddings(GONE, "clip#1", 4, [f"{GONE}-img"]) == {}
    assert store.summary(GONE, "summary", "hash") is None
    assert not any(folder.exists() for folder in folders)
    assert traces(backend, home, GONE) == []
    # The other user is whole.
    assert len(store.documents("kept")) == 3 and len(store.outputs("kept")[0].media) == 1
    store.close()
    assert traces(backend, home, GONE) == []
    with pytest.raises(UserNotFoundError):
        reopened = backend.open(home)
        try:
            reopened.delete_user(GONE)
        finally:
            reopened.close()


def test_no_stale_copy_survives_rows_moved_between_pages(
    backend: Backend, home: Path, store: ContextStore
) -> None:
    """Many users' interactions written in random order move the user's rows between
    pages of the indexes before the delete; no copy of them may survive it."""
    from pgen.context.records import Interaction, Item

    rng = random.Random(0)
    users = [f"u{k:03d}" for k in range(60)] + [GONE]
    rows = [
        Interaction(user_id=user, item_id=f"{rng.randrange(150)}", action="rate", rating=1.0)
        for user in users
        for _ in range(30)
    ]
    rng.shuffle(rows)
    store.add([Item(item_id=f"{k}") for k in range(150)])
    store.add(rows)
    store.delete_user(GONE)
    assert traces(backend, home, GONE) == []
