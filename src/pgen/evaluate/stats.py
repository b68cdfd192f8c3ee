"""Confidence intervals and paired significance tests over a metric's per-example rows.

* **Bootstrap CI** (percentile method): draw n examples with replacement B times, take
  the metric on each resample, report the 2.5th and 97.5th percentiles. Corpus metrics
  (BLEU, macro-F1, RMSE) are recomputed from resampled sufficient statistics, not
  averaged per example.
* **Paired test** of system A against system B on the same examples: a paired
  approximate-randomization (permutation) test. Under the null hypothesis that A and B
  are exchangeable, each example's pair of outputs is swapped with probability 1/2; the
  two-sided p-value is (1 + #{|Δ*| ≥ |Δ|}) / (1 + R), R rounds, Δ = metric(A) - metric(B).
  A paired bootstrap CI of Δ (same resampled examples for both systems) goes with it.
Fixed seeds make every number reproducible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pgen.evaluate.metrics.base import Metric

BOOTSTRAP_SAMPLES = 1000
PERMUTATION_ROUNDS = 1000
ALPHA = 0.05
CHUNK = 200  # resamples per matrix product: bounds memory at CHUNK x n weights


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    delta: float  # metric(system) - metric(baseline)
    low: float
    high: float
    p_value: float
    better: bool  # the direction of delta is an improvement for this metric
    differ: int = 0  # examples whose statistics differ between the two systems

    @property
    def significant(self) -> bool:
        """Better at p < 0.05: what the reports' marks follow (the test, not the CI)."""
        return self.better and self.p_value < ALPHA

    def as_dict(self) -> dict[str, float | bool]:
        return {**asdict(self), "significant": self.significant}


def _resample_weights(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(size, n) counts: how often each example appears in each bootstrap resample."""
    draws = rng.integers(0, n, size=(size, n))
    weights = np.zeros((size, n), dtype=np.float64)
    np.add.at(weights, (np.arange(size)[:, None], draws), 1.0)
    return weights


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def bootstrap(
    metric: Metric, rows: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> Estimate:
    value = metric.value(rows)
    n = len(rows)
    if n == 0:
        return Estimate(value, value, value)
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, samples, CHUNK):
        weights = _resample_weights(rng, n, min(CHUNK, samples - start))
        values.append(metric.aggregate(weights @ rows))
    low, high = _percentiles(np.concatenate(values))
    return Estimate(value, low, high)


def paired_test(
    metric: Metric,
    rows: np.ndarray,
    baseline_rows: np.ndarray,
    rounds: int = PERMUTATION_ROUNDS,
    seed: int = 0,
) -> Comparison:
    if rows.shape != baseline_rows.shape:
        raise ValueError("paired test needs both systems scored on the same examples")
    delta = metric.value(rows) - metric.value(baseline_rows)
    better = delta > 0 if metric.higher_is_better else delta < 0
    n = len(rows)
    if n == 0:
        return Comparison(delta, delta, delta, 1.0, False)
    differ = int(np.sum(np.any(rows != baseline_rows, axis=tuple(range(1, rows.ndim)))))
    rng = np.random.default_rng(seed)
    total, base_total = rows.sum(axis=0), baseline_rows.sum(axis=0)
    swap_gain = baseline_rows - rows  # what a swap moves from baseline into system
    extreme = 0
    for start in range(0, rounds, CHUNK):
        swaps = rng.integers(0, 2, size=(min(CHUNK, rounds - start), n)).astype(np.float64)
        moved = swaps @ swap_gain
        permuted = metric.aggregate(total + moved) - metric.aggregate(base_total - moved)
        extreme += int(np.sum(np.abs(permuted) >= abs(delta) - 1e-12))
    p_value = (1 + extreme) / (1 + rounds)
    deltas = []
    for start in range(0, BOOTSTRAP_SAMPLES, CHUNK):
        weights = _resample_weights(rng, n, min(CHUNK, BOOTSTRAP_SAMPLES - start))
        deltas.append(metric.aggregate(weights @ rows) - metric.aggregate(weights @ baseline_rows))
    low, high = _percentiles(np.concatenate(deltas))
    return Comparison(float(delta), low, high, float(p_value), bool(better), differ)
