"""The text-aware recommender reads item text through the default embedder (MiniLM)."""

from __future__ import annotations

import numpy as np
import pytest

from pgen.recommend.arrays import Split
from pgen.recommend.protocol import evaluate
from pgen.recommend.recommenders import build
from pgen.recommend.recommenders.textaware import embed_items
from tests.rec.conftest import planted_records

PARAMS = {"dim": 16, "epochs": 12, "lr": 0.02, "batch_size": 256, "patience": 3}


@pytest.fixture(scope="module")
def item_vectors(planted_split: Split) -> np.ndarray:
    from pgen.models.embedding import SentenceEmbedder

    items, _ = planted_records()
    text = {item.item_id: item.text for item in items}
    return embed_items(SentenceEmbedder(), [text[i] for i in planted_split.data.item_ids])


def test_text_model_learns_and_beats_popularity(
    planted_split: Split, item_vectors: np.ndarray
) -> None:
    n_users, n_items = planted_split.data.n_users, planted_split.data.n_items
    pop = build("pop", n_users, n_items)
    pop.fit(planted_split)
    model = build("text", n_users, n_items, **PARAMS)
    model.set_item_text(item_vectors)
    model.fit(planted_split)
    ours = evaluate(model, planted_split).metrics["ndcg@10"]
    assert ours > 3 * evaluate(pop, planted_split).metrics["ndcg@10"]


def test_text_reaches_items_nobody_trained_on(
    planted_split: Split, item_vectors: np.ndarray
) -> None:
    # Withhold one item per group from training: only its text can place it.
    data = planted_split.data
    group = {i: int(i.removeprefix("i")) // 12 for i in data.item_ids}
    cold = {data.item_ids.index(f"i{g * 12 + 11}") for g in range(4)}
    train = [np.array([i for i in s if i not in cold], dtype=np.int64) for s in planted_split.train]
    split = Split(
        data, train, planted_split.eval_users, planted_split.valid_items, planted_split.test_items
    )
    scores = {}
    for name in ("bpr", "text"):
        model = build(name, data.n_users, data.n_items, **PARAMS)
        if name == "text":
            model.set_item_text(item_vectors)
        model.fit(split)
        users = split.eval_users[:40]
        s = model.score(users, split.history("test")[:40]).detach().numpy()
        # How often a user's own-group cold item outscores the other groups' cold items.
        wins = []
        for row, user in enumerate(users):
            own = group[data.item_ids[int(split.train[user][0])]]
            mine = next(c for c in cold if group[data.item_ids[c]] == own)
            wins.append(all(s[row, mine] > s[row, c] for c in cold if c != mine))
        scores[name] = float(np.mean(wins))
    assert scores["text"] > 0.6 and scores["text"] > scores["bpr"] + 0.2, scores
