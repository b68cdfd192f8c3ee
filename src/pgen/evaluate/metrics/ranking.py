"""Top-K ranking metrics, defined as RecBole's evaluator defines them.

Input per user: a boolean row saying which of the top ``max(ks)`` ranked items are
positives (``hits``), and how many positives the user has in all (``n_pos``). Every metric
is computed per user and then averaged over users:

- HR@K: 1 if any positive is in the top K.
- MRR@K: 1 / rank of the first positive in the top K (0 if none).
- NDCG@K: DCG / IDCG with gains 1 / log2(rank + 1); IDCG is the DCG of min(n_pos, K)
  positives ranked first.
- Recall@K: positives in the top K / n_pos.
- Precision@K: positives in the top K / K.
"""

from __future__ import annotations

import numpy as np

METRICS = ("hr", "ndcg", "mrr", "recall", "precision")
DEFAULT_KS = (5, 10, 20)


def per_user(hits: np.ndarray, n_pos: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Each metric at cutoff ``k`` for every user (rows of ``hits``)."""
    if hits.shape[1] < k:
        raise ValueError(f"need the top {k} ranks, got {hits.shape[1]}")
    top = hits[:, :k].astype(bool)
    ranks = np.arange(1, k + 1, dtype=np.float64)
    gains = 1.0 / np.log2(ranks + 1.0)
    found = top.sum(axis=1).astype(np.float64)
    first = np.where(top.any(axis=1), top.argmax(axis=1) + 1, 0)
    ideal_len = np.minimum(n_pos, k).astype(np.int64)
    ideal = np.concatenate([[0.0], np.cumsum(gains)])[ideal_len]
    dcg = (top * gains).sum(axis=1)
    return {
        "hr": (found > 0).astype(np.float64),
        "ndcg": np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0),
        "mrr": np.divide(1.0, first, out=np.zeros(len(first)), where=first > 0),
        "recall": np.divide(found, n_pos, out=np.zeros_like(found), where=n_pos > 0),
        "precision": found / k,
    }


def summarize(
    hits: np.ndarray, n_pos: np.ndarray, ks: tuple[int, ...] = DEFAULT_KS
) -> dict[str, float]:
    """Mean over users of every metric at every cutoff: ``{"ndcg@10": ...}``."""
    result: dict[str, float] = {}
    for k in ks:
        for name, values in per_user(hits, n_pos, k).items():
            result[f"{name}@{k}"] = float(values.mean()) if len(values) else 0.0
    return result


def hits_from_ranks(ranks: np.ndarray, depth: int) -> np.ndarray:
    """One positive per user at 1-based ``ranks``: the boolean top-``depth`` rows."""
    hits = np.zeros((len(ranks), depth), dtype=bool)
    inside = ranks <= depth
    hits[np.flatnonzero(inside), ranks[inside] - 1] = True
    return hits
