"""Training a recommender on the store's interactions: the one path the benchmark and the
service share (``train_model``), and the item texts text-aware recommenders embed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pgen.context.base import ContextStore
from pgen.models.base import Embedder
from pgen.recommend.arrays import Sequences, Split
from pgen.recommend.recommenders import REGISTRY, Recommender, TextBPR, build
from pgen.recommend.recommenders.textaware import embed_items


def item_texts(store: ContextStore, sequences: Sequences) -> list[str]:
    items = {item.item_id: item for item in store.items()}
    return [items[i].text or items[i].title or i for i in sequences.item_ids]


def train_model(
    name: str,
    split: Split,
    params: dict[str, Any],
    texts: Callable[[], list[str]],
    embedder: Callable[[], Embedder],
    progress: Callable[[str], None] | None = None,
    seed: int | None = None,
) -> Recommender:
    params = dict(params)
    if seed is not None and "seed" in REGISTRY[name].defaults:
        # `bench rec --seed` must reach the model, or the result file would record a seed
        # the training never used; an explicit --param seed=... still wins.
        params.setdefault("seed", seed)
    encoder = None
    if name == TextBPR.name:
        encoder = embedder()
        params.setdefault("text_dim", encoder.dim)
        params["embedder"] = encoder.model_id  # saved with the model, for the record
    model = build(name, split.data.n_users, split.data.n_items, **params)
    model.user_ids, model.item_ids = list(split.data.user_ids), list(split.data.item_ids)
    if isinstance(model, TextBPR) and encoder is not None:
        model.set_item_text(embed_items(encoder, texts()))
    model.fit(split, progress)
    return model
