"""SASRec: causal self-attention over a user's item sequence (Kang & McAuley, 2018).

Training uses each user's whole sequence at once: every position predicts the next item
with a softmax over the catalog (cross-entropy), so one pass over the sequences trains on
every interaction. Sequences longer than ``max_len`` are cut into consecutive windows.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pgen.recommend.arrays import Split
from pgen.recommend.recommenders.base import TrainableRecommender, seed_everything
from pgen.recommend.recommenders.training import TRAINING_DEFAULTS, adam, train_with_early_stopping


class Block(nn.Module):
    """Pre-norm transformer block: attention, then a position-wise feed-forward net."""

    def __init__(self, dim: int, heads: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, inner), nn.GELU(), nn.Dropout(dropout), nn.Linear(inner, dim)
        )
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, -1).unbind(2)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            dropout_p=self.attn_dropout if self.training else 0.0,
        )
        x = x + self.dropout(self.out(attended.transpose(1, 2).reshape(batch, length, dim)))
        return x + self.dropout(self.ff(self.norm2(x)))


class SASRec(TrainableRecommender):
    name = "sasrec"
    defaults: ClassVar[dict[str, Any]] = {
        "dim": 64,
        "heads": 2,
        "layers": 2,
        "inner": 256,
        "dropout": 0.3,
        "max_len": 50,
        "lr": 0.002,
        "batch_size": 128,
        **TRAINING_DEFAULTS,
    }

    def __init__(self, n_users: int, n_items: int, **params: Any) -> None:
        super().__init__(n_users, n_items, **params)
        seed_everything(int(self.params["seed"]))
        dim, max_len = int(self.params["dim"]), int(self.params["max_len"])
        dropout = float(self.params["dropout"])
        # Index 0 is padding; item i is embedded at row i + 1.
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(
            Block(dim, int(self.params["heads"]), int(self.params["inner"]), dropout)
            for _ in range(int(self.params["layers"]))
        )
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def encode(self, sequences: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position of left-padded sequences (0 = padding)."""
        length = sequences.shape[1]
        positions = torch.arange(length)
        x = self.item_embedding(sequences) * math.sqrt(self.item_embedding.embedding_dim)
        x = self.dropout(x + self.position_embedding(positions)[None])
        real = sequences > 0
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        # Attend to earlier real items; every position may attend to itself, so padded
        # rows never see an empty set (which would give NaNs).
        mask = (causal[None] & real[:, None, :]) | torch.eye(length, dtype=torch.bool)[None]
        for block in self.blocks:
            x = block(x, mask[:, None])
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_embedding.weight[1:].T

    def _pad(self, histories: list[np.ndarray]) -> torch.Tensor:
        max_len = int(self.params["max_len"])
        batch = np.zeros((len(histories), max_len), dtype=np.int64)
        for row, history in enumerate(histories):
            recent = np.asarray(history[-max_len:], dtype=np.int64) + 1
            if len(recent):
                batch[row, max_len - len(recent) :] = recent
        return torch.from_numpy(batch)

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        return self.logits(self.encode(self._pad(histories))[:, -1])

    def windows(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, next items) windows covering every training transition once."""
        max_len = int(self.params["max_len"])
        inputs, targets = [], []
        for sequence in split.train:
            shifted = np.asarray(sequence, dtype=np.int64) + 1
            for end in range(len(shifted) - 1, 0, -max_len):
                lo = max(0, end - max_len)
                row_in = np.zeros(max_len, dtype=np.int64)
                row_out = np.zeros(max_len, dtype=np.int64)
                row_in[max_len - (end - lo) :] = shifted[lo:end]
                row_out[max_len - (end - lo) :] = shifted[lo + 1 : end + 1]
                inputs.append(row_in)
                targets.append(row_out)
        if not inputs:
            raise ValueError("sasrec needs users with at least two training interactions")
        return np.stack(inputs), np.stack(targets)

    def fit(self, split: Split, progress: Any = None) -> dict[str, Any]:
        inputs, targets = self.windows(split)
        optimizer = adam(self)
        rng = np.random.default_rng(int(self.params["seed"]))
        batch = int(self.params["batch_size"])

        def run_epoch(epoch: int) -> float:
            order = rng.permutation(len(inputs))
            total, count = 0.0, 0
            for lo in range(0, len(order), batch):
                rows = order[lo : lo + batch]
                x = torch.from_numpy(inputs[rows])
                y = torch.from_numpy(targets[rows])
                hidden = self.encode(x)
                real = y > 0
                loss = F.cross_entropy(self.logits(hidden[real]), y[real] - 1)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * int(real.sum())
                count += int(real.sum())
            return total / max(count, 1)

        self.log = train_with_early_stopping(self, split, run_epoch, progress)
        return self.log
