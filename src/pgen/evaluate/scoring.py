"""Scores with confidence intervals and paired tests against ``none``.

What produced them (model, data, versions, machine) is ``pgen.evaluate.run_record``'s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pgen.evaluate.metrics import Metric, lamp_rouge_bootstrap_mid
from pgen.evaluate.metrics.overlap import LAMP_ROUGE_DEFINITION
from pgen.evaluate.stats import bootstrap, paired_test

BASELINE = "none"  # the setting every other one is tested against

# What the report's marks follow, and why the two numbers next to a difference can
# disagree: said in every metrics.json and report.md.
SIGNIFICANCE = (
    "✓ marks a setting better than `none` at p < 0.05 in the paired approximate-"
    "randomization test (the p-value); the stars and the plot's marks follow that test, not "
    "the bootstrap interval. The two answer different questions and can disagree: the "
    "interval resamples examples, the test swaps the two settings' outputs per example. "
    "When only a few paired differences are non-zero, every bootstrap resample that draws "
    "them has the same sign, so the interval can exclude 0 while the test, which has only "
    "2^d distinct swaps for d differing examples (smallest two-sided p about 2/2^d), cannot "
    "reach 0.05: `differ` counts those examples."
)


def score(
    metrics: Sequence[Metric],
    golds: Sequence[str],
    outputs: Mapping[str, Sequence[str]],
    seed: int = 0,
    lamp_rouge: bool = False,
) -> dict[str, Any]:
    """For each system: every metric with a bootstrap 95% CI, and, when a ``none`` system
    is present, the paired difference against it (bootstrap CI and permutation p-value).
    ``lamp_rouge`` (generation tasks) adds ROUGE as LaMP's evaluator aggregates it, the
    number to compare with published LaMP and LongLaMP results."""
    rows: dict[str, dict[str, np.ndarray]] = {
        name: {m.name: m.statistics(list(preds), list(golds)) for m in metrics}
        for name, preds in outputs.items()
    }
    systems: dict[str, Any] = {}
    for name in outputs:
        entry: dict[str, Any] = {
            "metrics": {
                m.name: bootstrap(m, rows[name][m.name], seed=seed).as_dict() for m in metrics
            }
        }
        if BASELINE in outputs and name != BASELINE:
            entry["vs_none"] = {
                m.name: paired_test(
                    m, rows[name][m.name], rows[BASELINE][m.name], seed=seed
                ).as_dict()
                for m in metrics
            }
        if lamp_rouge:
            entry["lamp_rouge"] = lamp_rouge_bootstrap_mid(list(outputs[name]), list(golds))
        systems[name] = entry
    found: dict[str, Any] = {
        "examples": len(golds),
        "metrics": [
            {"name": m.name, "higher_is_better": m.higher_is_better, "definition": m.definition}
            for m in metrics
        ],
        "systems": systems,
        "statistics": {
            "ci": "bootstrap percentile 95%, 1000 resamples, seed 0",
            "test": "paired approximate randomization, 1000 rounds, two-sided; "
            "delta CI by paired bootstrap",
            "marks": SIGNIFICANCE,
        },
    }
    if lamp_rouge:
        found["lamp_rouge_definition"] = LAMP_ROUGE_DEFINITION
    return found
