"""Delete-user for trained recommenders: a saved model is an artifact of every user in it.

A recommender trained over the store lists its users' ids in ``config.json`` and, for
pairwise models (BPR, text-aware BPR), keeps one learned vector per user. Deleting a
user removes their id and their vector from every saved model, saved whole again (a new
folder swapped in, so a crash leaves the old model or the new one, never a mix). What a
model learned from them in its shared parameters (item vectors, popularity counts, item
similarities) cannot be taken out without retraining: the messages say so. A model that
cannot be edited is removed, with the command that retrains it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import torch

from pgen.context.base import ContextStore
from pgen.recommend.recommenders import load
from pgen.recommend.recommenders.mf import PairwiseModel

RECOMMENDERS = "recommenders"  # the store's shared kind under which served models live


def _legacy_folders(store: ContextStore) -> list[Path]:
    """Models saved by older pgen next to the store file, in ``<store>-recommenders/``."""
    location = Path(store.location)
    legacy = location.parent / f"{location.stem}-recommenders"
    return sorted(p for p in legacy.iterdir() if p.is_dir()) if legacy.is_dir() else []


def saved_recommenders(store: ContextStore) -> list[Path]:
    return [*store.shared_paths(RECOMMENDERS), *_legacy_folders(store)]


def forget_user(store: ContextStore, user_id: str) -> list[str]:
    """Remove ``user_id`` from every saved recommender of the store; one message per model
    that held them (empty when none did)."""
    messages = []
    folders = saved_recommenders(store)
    # Copies a crash left mid-swap (".name.<id>.new/.old") may hold the user: remove.
    for parent in {folder.parent for folder in folders}:
        for leftover in parent.glob(".*.*"):
            shutil.rmtree(leftover, ignore_errors=True)
    for folder in folders:
        config_path = folder / "config.json"
        try:
            config = json.loads(config_path.read_text())
            holds_user = user_id in config["user_ids"]
            name = str(config["model"])
        except (OSError, ValueError, KeyError, TypeError):
            holds_user, name = True, folder.name  # unreadable: it may hold them
        if not holds_user:
            continue
        retrain = f"`pgen recommend --train --model {name}`"
        try:
            _without_user(folder, user_id)
        except Exception as error:
            shutil.rmtree(folder, ignore_errors=True)
            messages.append(
                f"recommender {name!r} removed: it could not be edited to forget the user "
                f"({type(error).__name__}); retrain it with {retrain}"
            )
            continue
        messages.append(
            f"recommender {name!r}: the user's id and vector removed; what it learned from "
            f"their interactions in shared weights stays until it is retrained with {retrain}"
        )
    return messages


def _without_user(folder: Path, user_id: str) -> None:
    model = load(folder)
    row = model.user_ids.index(user_id)
    model.user_ids = [u for u in model.user_ids if u != user_id]
    if isinstance(model, PairwiseModel):
        weight = model.user_embedding.weight.detach()
        kept = torch.cat([weight[:row], weight[row + 1 :]])
        model.user_embedding = torch.nn.Embedding.from_pretrained(kept, freeze=False)
    model.n_users = len(model.user_ids)
    # Saved beside, then swapped in: readers and crashes see one whole model.
    fresh = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.new")
    stale = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.old")
    model.save(fresh)
    folder.rename(stale)
    fresh.rename(folder)
    shutil.rmtree(stale)
