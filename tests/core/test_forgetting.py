"""Forgetting: after delete-user, no byte of the user is left under the store's home.

A user with a distinctive id and a canary word in every document, subject and output is
ingested next to others, given embeddings, a BM25 snapshot, an adapter folder and a place
in two trained recommenders (BPR, with a vector per user, and Pop). After
``Engine.delete_user`` neither the id nor the canary appears in any file under the home
folder, in any table, or in the raw bytes of the database, its WAL and shared memory. A
crash between the commit and the file removal is finished by the next open, or by
deleting the user again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from pgen.context import Interaction, Item, User, UserNotFoundError
from pgen.context.ingest import ingest
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.text import TransformersTextModel
from pgen.recommend.recommenders.mf import PairwiseModel
from pgen.recommend.service import train_for_serving
from pgen.recommend.unlearn import forget_user, saved_recommenders
from pgen.usermodel import retrievers as retrievers_module

from .test_concurrency import HashEmbedder

GONE = "zelda-7f3q"
CANARY = "quokkasecret"


def _traces(home: Path) -> list[str]:
    """Every place under ``home`` holding the user's id or canary, as bytes or text."""
    found = []
    needles = [GONE.encode(), CANARY.encode(), GONE.encode("utf-16-le")]
    for path in sorted(home.rglob("*")):
        if GONE in path.name:
            found.append(f"name: {path}")
        if path.is_file() and any(n in path.read_bytes() for n in needles):
            found.append(f"bytes: {path}")
    return found


def _populate(home: Path, data: Path) -> SQLiteStore:
    store = SQLiteStore(home / "pgen.sqlite")
    (data / "rex").mkdir(parents=True)
    (data / "rex" / "1.png").write_bytes(b"not really a png")
    records = [
        json.dumps(r)
        for r in [
            {"type": "user", "user_id": GONE, "profile": {"likes": CANARY}},
            *[
                {"type": "document", "user_id": u, "doc_id": f"d{i}", "text": f"{w} pasta {i}"}
                for u, w in [(GONE, CANARY), ("kept", "tomato"), ("other", "basil")]
                for i in range(8)
            ],
            *[{"type": "item", "item_id": f"i{i}", "title": f"item {i}"} for i in range(6)],
            *[
                {"type": "interaction", "user_id": u, "item_id": f"i{(i + k) % 6}", "rating": 4}
                for k, u in enumerate([GONE, "kept", "other"])
                for i in range(4)
            ],
            {
                "type": "subject",
                "user_id": GONE,
                "name": f"{CANARY} dog",
                "class_word": "dog",
                "image_paths": ["rex/1.png"],
            },
        ]
    ]
    (data / "context.jsonl").write_text("\n".join(records) + "\n")
    ingest(store, data / "context.jsonl")
    return store


def test_delete_user_leaves_no_trace_in_files_tables_or_raw_bytes(
    tmp_path: Path, tiny_model: TransformersTextModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrievers_module, "SNAPSHOT_AFTER", 4)  # GONE gets a BM25 snapshot
    home, data = tmp_path / "home", tmp_path / "data"
    store = _populate(home, data)
    engine = Engine(store, tiny_model, HashEmbedder(), prompt_tokens=400)
    for user in (GONE, "kept"):
        engine.retrievers.get("bm25").retrieve(user, "pasta", 3)
        engine.retrievers.get("dense").retrieve(user, "pasta", 3)
        engine.generate(user, f"write about pasta {CANARY if user == GONE else ''}")
    (store.artifact_path(GONE, "lora", "default") / "adapter.safetensors").write_bytes(
        CANARY.encode()
    )
    assert store.artifacts(GONE)[("index", "bm25")].joinpath("index.npz").is_file()
    params = {"epochs": 2, "dim": 8, "batch_size": 16}
    bpr, folder = train_for_serving(store, "bpr", params, HashEmbedder)
    assert isinstance(bpr, PairwiseModel)
    train_for_serving(store, "pop", {}, HashEmbedder)
    row = bpr.user_ids.index(GONE)
    gone_vector = bpr.user_embedding.weight[row].detach().numpy().tobytes()
    kept_vectors = {
        u: bpr.user_embedding.weight[i].detach().numpy().copy()
        for i, u in enumerate(bpr.user_ids)
        if u != GONE
    }
    assert _traces(home)  # the check can see them

    counts = engine.delete_user(GONE)

    assert counts["documents"] == 8 and counts["recommenders"] == 2
    assert counts["checkpointed"] == 1
    assert _traces(home) == []
    # BPR lost exactly the user's vector; the others' vectors and ids stayed.
    config = json.loads((folder / "config.json").read_text())
    weights = load_file(str(folder / "weights.safetensors"))["user_embedding.weight"]
    assert config["n_users"] == len(kept_vectors) == weights.shape[0]
    for user, vector in kept_vectors.items():
        assert np.array_equal(weights[config["user_ids"].index(user)].numpy(), vector)
    assert gone_vector not in (folder / "weights.safetensors").read_bytes()
    # The others are served as before; the deleted user is unknown everywhere.
    assert [r.item.item_id for r in engine.recommend("kept", 2, model="bpr")]
    with pytest.raises(UserNotFoundError):
        engine.recommend(GONE, 2, model="pop")
    assert [d.doc_id for d in store.documents("kept")] == [f"d{i}" for i in range(8)]
    with pytest.raises(UserNotFoundError):
        engine.delete_user(GONE)  # nothing left anywhere: "not found", as before
    store.close()


def test_delete_again_sweeps_leftover_files_instead_of_failing(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    store = _populate(home, data)
    folder = store.artifact_path(GONE, "lora", "default").parent.parent
    store.delete_user(GONE)
    # Something (another tool, an old pgen) left a file in the user's folder.
    folder.mkdir(parents=True)
    (folder / "left.bin").write_bytes(CANARY.encode())
    counts = store.delete_user(GONE)
    assert counts["files"] == 1 and not folder.exists()
    store.close()


def test_forget_user_removes_a_model_it_cannot_edit(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    store.add([User(user_id=GONE), Item(item_id="i"), Interaction(user_id=GONE, item_id="i")])
    broken = store.shared_path("recommenders", "bpr")
    (broken / "config.json").write_text("{ torn")
    messages = forget_user(store, GONE)
    assert len(messages) == 1 and "retrain it with `pgen recommend --train" in messages[0]
    assert not broken.exists() and saved_recommenders(store) == []
    assert forget_user(store, "nobody") == []
    store.close()
