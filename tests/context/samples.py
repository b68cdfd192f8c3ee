"""Sample context of one user for the contract suite: one of every record kind."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np

from pgen.context.base import ContextStore
from pgen.context.records import (
    Document,
    Feedback,
    Interaction,
    Item,
    Preference,
    Record,
    Subject,
    User,
)


def user_records(user_id: str, items: int = 3) -> list[Record]:
    when = datetime(1998, 3, 31, tzinfo=UTC)
    return [
        User(user_id=user_id, profile={"name": f"name of {user_id}"}),
        *[Item(item_id=f"i{k}", title=f"item {k}") for k in range(items)],
        *[
            Document(user_id=user_id, doc_id=f"d{k}", text=f"{user_id} wrote post {k}", time=when)
            for k in range(3)
        ],
        Interaction(user_id=user_id, item_id="i1", action="rate", rating=4.0, time=when),
        Subject(user_id=user_id, name="dog", class_word="dog", image_paths=[f"{user_id}/dog.jpg"]),
        Feedback(
            user_id=user_id, feedback_id="f1", prompt=f"{user_id} asks", chosen="a", rejected="b"
        ),
        Preference(
            user_id=user_id,
            preference_id="p1",
            text=f"{user_id} avoids nightlife",
            origin="detected",
            source="d0",
            start=0,
            end=len(user_id) + 6,
            time=when,
        ),
    ]


def fill(store: ContextStore, user_id: str) -> None:
    """Every kind of row and file a user can own, each naming the user."""
    store.add(user_records(user_id))
    vector = np.ones(4, dtype=np.float32)
    store.put_embeddings(user_id, "m#1", [("d0", "h0", vector), ("d1", "h1", vector)])
    store.put_image_embeddings(user_id, "clip#1", [(f"{user_id}-img", vector)])
    store.put_summary(user_id, "summary", "hash", f"{user_id} likes dogs")
    folder = store.artifact_path(user_id, "images", "run1")
    (folder / "00.png").write_bytes(f"png of {user_id}".encode())
    store.save_output(
        user_id,
        f"{user_id} instruction",
        "rag",
        f"{user_id} output",
        {"images": [str(folder / "00.png")]},
        modality="image",
        media=[folder / "00.png"],
    )
    adapter = store.artifact_path(user_id, "lora", "default")
    (adapter / "adapter_config.json").write_text(json.dumps({"user": user_id}))
