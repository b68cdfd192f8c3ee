"""A metric as sufficient statistics: per-example rows that sum to the corpus score.

Every metric here turns each (prediction, gold) pair into a row of numbers whose column
sums determine the corpus-level value (a mean needs the total and the count; macro-F1
needs per-label true positives and counts; BLEU needs n-gram matches and lengths). That
one shape serves the plain score, bootstrap confidence intervals and paired tests: a
resample is a weighted sum of rows, so none of them re-tokenizes text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Statistics = Callable[[Sequence[str], Sequence[str]], np.ndarray]
Aggregate = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """``statistics(preds, golds)`` -> (n, s) array; ``aggregate(sums)`` maps (..., s) -> (...)."""

    name: str
    higher_is_better: bool
    statistics: Statistics
    aggregate: Aggregate
    definition: str

    def __call__(self, preds: Sequence[str], golds: Sequence[str]) -> float:
        return self.value(self.statistics(preds, golds))

    def value(self, rows: np.ndarray) -> float:
        return float(self.aggregate(rows.sum(axis=0)))


def check_pairs(preds: Sequence[str], golds: Sequence[str]) -> None:
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} golds: they must pair up")


def mean_rows(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Rows (value, 1) whose sums give total and count."""
    column = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    return np.hstack([column, np.ones_like(column)])


def mean_of_rows(sums: np.ndarray) -> np.ndarray:
    """Total / count, 0 for an empty corpus."""
    total, count = sums[..., 0], sums[..., 1]
    return np.divide(total, count, out=np.zeros_like(total, dtype=np.float64), where=count > 0)
