"""BPR matrix factorization: user and item vectors trained so seen items outrank unseen ones."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from pgen.recommend.arrays import Split
from pgen.recommend.recommenders.base import TrainableRecommender, seed_everything
from pgen.recommend.recommenders.training import TRAINING_DEFAULTS, adam, train_with_early_stopping


class NegativeSampler:
    """Uniform negatives that are not among the user's training items."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int, seed: int) -> None:
        self.n_items = n_items
        self.known = np.unique(users * n_items + items)
        self.rng = np.random.default_rng(seed)

    def draw(self, users: np.ndarray) -> np.ndarray:
        negatives = self.rng.integers(0, self.n_items, size=len(users))
        pending = np.arange(len(users))
        # A few redraws: collisions are rare and get rarer each round. Only the redrawn
        # ones are checked again: a lookup of unsorted keys costs a cache miss each, and
        # checking every draw each round was most of an epoch's time.
        for _ in range(10):
            keys = users[pending] * self.n_items + negatives[pending]
            where = np.searchsorted(self.known, keys).clip(max=len(self.known) - 1)
            pending = pending[self.known[where] == keys]
            if not len(pending):
                break
            negatives[pending] = self.rng.integers(0, self.n_items, size=len(pending))
        return negatives


class PairwiseModel(TrainableRecommender):
    """A user vector dotted with item vectors, trained with the BPR loss."""

    defaults: ClassVar[dict[str, Any]] = {
        "dim": 64,
        "lr": 0.005,
        "batch_size": 2048,
        **TRAINING_DEFAULTS,
    }

    def __init__(self, n_users: int, n_items: int, **params: Any) -> None:
        super().__init__(n_users, n_items, **params)
        seed_everything(int(self.params["seed"]))
        dim = int(self.params["dim"])
        self.user_embedding = torch.nn.Embedding(n_users, dim)
        torch.nn.init.normal_(self.user_embedding.weight, std=0.1)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors of ``items`` (all items when None)."""
        raise NotImplementedError

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        return self.user_embedding(torch.from_numpy(users)) @ self.item_vectors().T

    def fit(self, split: Split, progress: Any = None) -> dict[str, Any]:
        users = np.concatenate([np.full(len(s), u) for u, s in enumerate(split.train)])
        items = np.concatenate(split.train).astype(np.int64)
        sampler = NegativeSampler(users, items, self.n_items, int(self.params["seed"]))
        optimizer = adam(self)
        rng = np.random.default_rng(int(self.params["seed"]))
        batch = int(self.params["batch_size"])

        def run_epoch(epoch: int) -> float:
            order = rng.permutation(len(users))
            negatives = sampler.draw(users[order])
            total = 0.0
            for lo in range(0, len(order), batch):
                u = torch.from_numpy(users[order[lo : lo + batch]])
                pos = torch.from_numpy(items[order[lo : lo + batch]])
                neg = torch.from_numpy(negatives[lo : lo + batch])
                user = self.user_embedding(u)
                difference = (user * (self.item_vectors(pos) - self.item_vectors(neg))).sum(-1)
                loss = -F.logsigmoid(difference).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(u)
            return total / max(len(order), 1)

        self.log = train_with_early_stopping(self, split, run_epoch, progress)
        return self.log


class BPRMF(PairwiseModel):
    """Matrix factorization with Bayesian personalized ranking (Rendle et al., 2009)."""

    name = "bpr"

    def __init__(self, n_users: int, n_items: int, **params: Any) -> None:
        super().__init__(n_users, n_items, **params)
        self.item_embedding = torch.nn.Embedding(n_items, int(self.params["dim"]))
        torch.nn.init.normal_(self.item_embedding.weight, std=0.1)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        if items is None:
            return self.item_embedding.weight
        return self.item_embedding(items)
