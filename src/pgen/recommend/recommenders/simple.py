"""Baselines without gradient training: most popular, and item-based nearest neighbors."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch

from pgen.recommend.arrays import Split
from pgen.recommend.recommenders.base import TrainableRecommender


class Pop(TrainableRecommender):
    """Every user gets the items with the most training interactions."""

    name = "pop"
    counts: torch.Tensor

    def __init__(self, n_users: int, n_items: int, **params: Any) -> None:
        super().__init__(n_users, n_items, **params)
        self.register_buffer("counts", torch.zeros(n_items))

    def fit(self, split: Split, progress: Any = None) -> dict[str, Any]:
        start = time.perf_counter()
        train = np.concatenate(split.train) if split.train else np.zeros(0, dtype=np.int64)
        self.counts = torch.from_numpy(np.bincount(train, minlength=self.n_items).astype("f4"))
        self.log = {"train_seconds": time.perf_counter() - start, "epochs": []}
        return self.log

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        return self.counts[None, :].expand(len(users), -1).clone()


class ItemKNN(TrainableRecommender):
    """Cosine item-item similarity over who interacted with what; ``k`` neighbors each.

    A user's score for an item sums its similarity to the items in their history.
    """

    name = "itemknn"
    defaults: ClassVar[dict[str, Any]] = {"k": 100, "shrink": 0.0}
    neighbors: torch.Tensor
    weights: torch.Tensor

    def __init__(self, n_users: int, n_items: int, **params: Any) -> None:
        super().__init__(n_users, n_items, **params)
        k = min(int(self.params["k"]), n_items)
        self.register_buffer("neighbors", torch.zeros(n_items, k, dtype=torch.long))
        self.register_buffer("weights", torch.zeros(n_items, k))

    def fit(self, split: Split, progress: Any = None) -> dict[str, Any]:
        start = time.perf_counter()
        rows = np.concatenate([np.full(len(s), u) for u, s in enumerate(split.train)])
        cols = np.concatenate(split.train)
        pairs = np.unique(rows * self.n_items + cols)  # one entry per (user, item)
        users, items = pairs // self.n_items, pairs % self.n_items
        matrix = torch.sparse_coo_tensor(
            torch.from_numpy(np.stack([items, users])),
            torch.ones(len(pairs)),
            (self.n_items, len(split.train)),
            check_invariants=False,
        ).coalesce()
        norms = torch.from_numpy(np.bincount(items, minlength=self.n_items).astype("f4")).sqrt()
        k = self.neighbors.shape[1]
        # Dense columns in chunks keep memory at (items x chunk) whatever the catalog size.
        chunk = max(1, 20_000_000 // max(len(split.train), 1))
        for lo in range(0, self.n_items, chunk):
            hi = min(lo + chunk, self.n_items)
            block = matrix.index_select(0, torch.arange(lo, hi)).to_dense().t()
            overlap = torch.sparse.mm(matrix, block).t()  # (chunk, items)
            sims = overlap / (norms[lo:hi, None] * norms[None, :] + 1e-8 + self.params["shrink"])
            sims[torch.arange(hi - lo), torch.arange(lo, hi)] = 0.0  # an item is not its own
            top = sims.topk(k, dim=1)
            self.neighbors[lo:hi], self.weights[lo:hi] = top.indices, top.values
        self.log = {"train_seconds": time.perf_counter() - start, "epochs": []}
        return self.log

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        scores = torch.zeros(len(users), self.n_items)
        if not any(len(h) for h in histories):
            return scores
        rows = torch.from_numpy(
            np.concatenate([np.full(len(h), r) for r, h in enumerate(histories)])
        )
        items = torch.from_numpy(np.concatenate(histories).astype(np.int64))
        k = self.neighbors.shape[1]
        scores.index_put_(
            (rows[:, None].expand(-1, k).reshape(-1), self.neighbors[items].reshape(-1)),
            self.weights[items].reshape(-1),
            accumulate=True,
        )
        return scores
