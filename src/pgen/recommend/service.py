"""Recommendations for one user from a model trained on the store (`pgen recommend`).

A served model trains on every user's interactions but the last (which validates it for
early stopping) and lives next to the store file, in ``<store>-recommenders/<model>/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pgen.context.base import ContextStore, UserNotFoundError
from pgen.models.base import Embedder, TextModel
from pgen.recommend.arrays import holdout_last, sequences_from_store
from pgen.recommend.fit import item_texts, train_model
from pgen.recommend.protocol import Scorer, mask_history
from pgen.recommend.recommenders import Recommender, load
from pgen.recommend.recommenders.mf import PairwiseModel
from pgen.recommend.rerank import LLMReranker
from pgen.results import Recommendation


def model_folder(store: ContextStore, name: str) -> Path:
    """Where the store keeps the served recommender ``name`` (trained over many users)."""
    return store.shared_path("recommenders", name)


def train_for_serving(
    store: ContextStore,
    name: str,
    params: dict[str, Any],
    embedder: Callable[[], Embedder],
    progress: Callable[[str], None] | None = None,
) -> tuple[Recommender, Path]:
    sequences = sequences_from_store(store)
    if sequences.n_interactions == 0:
        raise ValueError(f"{store.location}: no interactions to train on (ingest data with --data)")
    model = train_model(
        name,
        holdout_last(sequences),
        params,
        lambda: item_texts(store, sequences),
        embedder,
        progress,
    )
    return model, model.save(model_folder(store, name))


def recommend(
    store: ContextStore,
    name: str,
    user_id: str,
    k: int = 10,
    reranker: TextModel | None = None,
    candidates: int = 20,
) -> list[Recommendation]:
    """The user's top ``k`` unseen items under the saved model ``name``.

    With a ``reranker`` text model, the model's top ``candidates`` are re-ordered by it
    (the same LLM re-ranking `pgen bench rec --rerank N` measures); their scores
    are then re-ranking scores, above every other item's.
    """
    folder = model_folder(store, name)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no trained {name!r} recommender at {folder}; train one with "
            f"`pgen recommend --train --model {name}`"
        )
    if not store.has_user(user_id):
        raise UserNotFoundError(user_id)
    model = load(folder)
    index = {item: i for i, item in enumerate(model.item_ids)}
    history = np.array(
        [index[r.item_id] for r in store.interactions(user_id) if r.item_id in index],
        dtype=np.int64,
    )
    users = {user: i for i, user in enumerate(model.user_ids)}
    if user_id not in users and isinstance(model, PairwiseModel):
        raise ValueError(
            f"user {user_id!r} joined after the {name!r} model was trained, and {name} needs a "
            "trained vector per user; retrain with `pgen recommend --train`"
        )
    scorer: Scorer = model
    if reranker is not None:
        titles = {item.item_id: item.title or item.item_id for item in store.items(model.item_ids)}
        names = [titles.get(item_id, item_id) for item_id in model.item_ids]
        scorer = LLMReranker(model, reranker, names, candidates=candidates)
    with torch.no_grad():
        scores = scorer.score(np.array([users.get(user_id, 0)]), [history]).float().clone()
    mask_history(scores, [history], np.array([-1]))
    top = scores[0].topk(min(k, len(model.item_ids) - len(set(history.tolist()))))
    ids = [model.item_ids[i] for i in top.indices.tolist()]
    items = {item.item_id: item for item in store.items(ids)}
    return [
        Recommendation(items[item_id], float(score), rank)
        for rank, (item_id, score) in enumerate(zip(ids, top.values.tolist(), strict=True), 1)
        if item_id in items
    ]
