"""What every recommender shares: hyperparameters, scoring, saving and loading.

A saved model is a folder with ``config.json`` (model name, hyperparameters, the user and
item id maps, the training log) and ``weights.safetensors`` (the state dict).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pgen.recommend.arrays import Split

REGISTRY: dict[str, type[TrainableRecommender]] = {}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@runtime_checkable
class Recommender(Protocol):
    """A ranking model over the catalog: what serving, benchmarks and forgetting need. The
    built-in recommenders are ``TrainableRecommender``s; another one (a remote service, a
    model of another library) is a new class with these members."""

    @property
    def name(self) -> str: ...

    params: dict[str, Any]
    user_ids: list[str]  # row i of the model is user_ids[i]
    item_ids: list[str]
    log: dict[str, Any]

    def fit(self, split: Split, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Train on ``split.train`` (early stopping on its validation targets); a log."""
        ...

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        """(len(users), n_items) scores for users (row indexes) with these histories."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def save(self, folder: str | Path) -> Path: ...


class TrainableRecommender(torch.nn.Module):
    """Scores every item for users given their histories; trained on a ``Split``."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, n_users: int, n_items: int, **params: Any) -> None:
        super().__init__()
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"{self.name}: unknown settings {sorted(unknown)}; known: {sorted(self.defaults)}"
            )
        self.n_users = n_users
        self.n_items = n_items
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.user_ids: list[str] = []
        self.item_ids: list[str] = []
        self.log: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

    def fit(self, split: Split, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Train on ``split.train`` (early stopping on its validation targets); a log."""
        raise NotImplementedError

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        raise NotImplementedError

    def prepare_state(self, state: dict[str, torch.Tensor]) -> None:
        """Resize data-sized top-level buffers (counts, neighbors) before loading ``state``."""
        buffers = dict(self.named_buffers(recurse=False))
        for key, value in state.items():
            if key in buffers and buffers[key].shape != value.shape:
                setattr(self, key, torch.empty_like(value))

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "params": self.params}

    # -- persistence ----------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "model": self.name,
            "params": self.params,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
            "log": self.log,
        }
        (folder / "config.json").write_text(json.dumps(config, indent=1, default=str))
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / "weights.safetensors"))
        return folder


def build(name: str, n_users: int, n_items: int, **params: Any) -> TrainableRecommender:
    # Importing the package registers every model class.
    import pgen.recommend.recommenders  # noqa: F401

    if name not in REGISTRY:
        raise ValueError(f"unknown recommender {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](n_users, n_items, **params)


def load(folder: str | Path) -> TrainableRecommender:
    """A model saved with ``TrainableRecommender.save``."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: no saved recommender here")
    config = json.loads(config_path.read_text())
    model = build(config["model"], config["n_users"], config["n_items"], **config["params"])
    state = load_file(str(folder / "weights.safetensors"))
    model.prepare_state(state)
    model.load_state_dict(state)
    model.user_ids, model.item_ids, model.log = (
        config["user_ids"],
        config["item_ids"],
        config["log"],
    )
    model.eval()
    return model
