"""Text-aware BPR (VBPR-style): item vectors fused from an id embedding and item text.

The item's text goes through an ``Embedder`` once (``set_item_text``); a learned linear map
takes those vectors into the preference space and adds them to the item's own embedding.
Items nobody has interacted with still get a useful vector from their text alone.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from pgen.models.base import Embedder
from pgen.recommend.recommenders.mf import PairwiseModel


class TextBPR(PairwiseModel):
    name = "text"
    defaults: ClassVar[dict[str, Any]] = {
        **PairwiseModel.defaults,
        "text_dim": 384,
        "id_weight": 1.0,
        "embedder": "",  # which Embedder made the text vectors
    }
    text_vectors: torch.Tensor

    def __init__(self, n_users: int, n_items: int, **params: Any) -> None:
        super().__init__(n_users, n_items, **params)
        dim = int(self.params["dim"])
        self.item_embedding = torch.nn.Embedding(n_items, dim)
        torch.nn.init.normal_(self.item_embedding.weight, std=0.01)
        self.project = torch.nn.Linear(int(self.params["text_dim"]), dim, bias=False)
        self.register_buffer("text_vectors", torch.zeros(n_items, int(self.params["text_dim"])))

    def set_item_text(self, vectors: np.ndarray) -> None:
        """Item text embeddings, one row per item index, from the ``Embedder``."""
        if vectors.shape != tuple(self.text_vectors.shape):
            expected = tuple(self.text_vectors.shape)
            raise ValueError(f"text vectors have shape {vectors.shape}, expected {expected}")
        self.text_vectors = torch.from_numpy(np.asarray(vectors, dtype=np.float32))

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        ids = self.item_embedding.weight if items is None else self.item_embedding(items)
        text = self.text_vectors if items is None else self.text_vectors[items]
        return float(self.params["id_weight"]) * ids + self.project(text)


def embed_items(embedder: Embedder, texts: list[str], batch: int = 256) -> np.ndarray:
    """Item texts to unit vectors, in batches so a large catalog streams through."""
    parts = [embedder.embed(texts[lo : lo + batch]) for lo in range(0, len(texts), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)
