"""``pgen bench concepts``: recognition, identification and retrieval of a user's concepts.

From a DreamBench-layout folder: per subject, the first ``references`` photos are the
concept's references and the rest are queries. Three measurements:

* **identification**: each query photo's most similar concept is its own subject (top-1);
* **retrieval**: each concept ranks the pooled query photos of all subjects (recall@k, AP);
* **recognition** ("is <concept> in this photo?", every query against every concept) with
  a calibrated decision, measured on subjects the calibration never saw: the subjects are
  split into folds; alpha (and, as the baseline, one global cosine threshold) is fit on
  the other folds' subjects as one user, then applied to a user holding only the held-out
  subjects, whose per-concept calibration uses that user's own data.

95% intervals are percentile bootstraps over query photos (over concepts for mAP).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgen.evaluate.dreambench import BenchSubject, DreamBench
from pgen.usermodel.concepts import (
    Calibration,
    ConceptMemory,
    ImageVectors,
    fit_alpha,
    fit_global_threshold,
)

SAMPLES = 1000


@dataclass(frozen=True)
class ConceptsBenchConfig:
    references: int = 3
    folds: int = 3
    ks: tuple[int, ...] = (1, 5, 10)
    seed: int = 0


@dataclass
class _Split:
    subjects: list[BenchSubject]
    refs: list[np.ndarray]  # per subject, (references, dim)
    queries: np.ndarray  # (n, dim)
    owner: np.ndarray  # (n,) subject index of each query


def _split(bench: DreamBench, vectors: ImageVectors, references: int) -> _Split:
    refs, queries, owner = [], [], []
    for i, subject in enumerate(bench.subjects):
        if len(subject.images) <= references:
            raise ValueError(
                f"{bench.root / subject.name}: {len(subject.images)} photos; "
                f"needs more than --references {references}"
            )
        vecs = vectors.of_paths(subject.images)
        refs.append(vecs[:references])
        queries.append(vecs[references:])
        owner += [i] * (len(subject.images) - references)
    return _Split(bench.subjects, refs, np.concatenate(queries), np.array(owner))


def _memory(split: _Split, chosen: Sequence[int], calibration: Calibration) -> ConceptMemory:
    entries = [
        (split.subjects[i].name, split.subjects[i].class_word, "", (), split.refs[i])
        for i in chosen
    ]
    return ConceptMemory.build(entries, calibration)


def _interval(statistic: Callable[[np.ndarray], float], n: int, seed: int) -> dict[str, float]:
    """The statistic on all n units, and its 95% percentile-bootstrap interval."""
    value = statistic(np.arange(n))
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, n, n)) for _ in range(SAMPLES)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"value": float(value), "low": float(low), "high": float(high)}


def _mean_interval(values: np.ndarray, seed: int) -> dict[str, float]:
    return _interval(lambda idx: float(np.mean(values[idx])), len(values), seed)


def _average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = relevant[order]
    ranks = np.flatnonzero(hits) + 1
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks)) if len(ranks) else 0.0


def _pair_metrics(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    tp = float(np.sum(predicted & labels))
    fp = float(np.sum(predicted & ~labels))
    fn = float(np.sum(~predicted & labels))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": float(np.mean(predicted == labels)),
    }


def _pair_estimates(pairs: list[tuple[np.ndarray, np.ndarray]], seed: int) -> dict[str, Any]:
    """Recognition metrics over query rows of (predicted, label) pairs, with intervals."""
    predicted = [p for p, _ in pairs]
    labels = [lab for _, lab in pairs]
    out: dict[str, Any] = {"pairs": int(sum(len(p) for p in predicted))}
    for name in ("precision", "recall", "f1", "accuracy"):

        def statistic(idx: np.ndarray, name: str = name) -> float:
            return _pair_metrics(
                np.concatenate([predicted[i] for i in idx]),
                np.concatenate([labels[i] for i in idx]),
            )[name]

        out[name] = _interval(statistic, len(pairs), seed)
    return out


def _recognition(split: _Split, config: ConceptsBenchConfig) -> dict[str, Any]:
    """Held-out recognition: per-query rows of (predicted, label) pairs for both methods."""
    n = len(split.subjects)
    folds = [list(range(f, n, config.folds)) for f in range(min(config.folds, n))]
    rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"per-concept": [], "global": []}
    fitted = []
    for held in folds:
        fit = [i for i in range(n) if i not in held]
        fit_memory = _memory(split, fit, Calibration())
        fit_rows = np.isin(split.owner, fit)
        fit_labels = split.owner[fit_rows, None] == np.array(fit)[None]
        alpha = fit_alpha(fit_memory.confidences(split.queries[fit_rows]), fit_labels)
        threshold = fit_global_threshold(fit_memory.scores(split.queries[fit_rows]), fit_labels)
        calibration = Calibration(alpha=alpha, fitted_on=[split.subjects[i].name for i in fit])
        memory = _memory(split, held, calibration)
        held_rows = np.flatnonzero(np.isin(split.owner, held))
        queries = split.queries[held_rows]
        labels = split.owner[held_rows, None] == np.array(held)[None]
        per_concept = memory.confidences(queries) >= alpha
        global_ = memory.scores(queries) >= threshold
        for r in range(len(held_rows)):
            rows["per-concept"].append((per_concept[r], labels[r]))
            rows["global"].append((global_[r], labels[r]))
        fitted.append(
            {
                "held_out": [split.subjects[i].name for i in held],
                "alpha": alpha,
                "global_threshold": threshold,
            }
        )
    result: dict[str, Any] = {"folds": fitted}
    for method, pairs in rows.items():
        result[method] = _pair_estimates(pairs, config.seed)
    return result


def run_concepts_bench(
    bench: DreamBench, vectors: ImageVectors, config: ConceptsBenchConfig | None = None
) -> dict[str, Any]:
    config = config or ConceptsBenchConfig()
    split = _split(bench, vectors, config.references)
    everyone = list(range(len(split.subjects)))
    scores = _memory(split, everyone, Calibration()).scores(split.queries)
    relevant = split.owner[:, None] == np.array(everyone)[None]
    top1 = scores.argmax(axis=1) == split.owner
    aps = np.array([_average_precision(scores[:, j], relevant[:, j]) for j in everyone])
    order = np.argsort(-scores, axis=0, kind="stable")
    retrieval: dict[str, Any] = {"map": _mean_interval(aps, config.seed)}
    for k in config.ks:
        recall = np.array(
            [relevant[order[:k, j], j].sum() / relevant[:, j].sum() for j in everyone]
        )
        retrieval[f"recall@{k}"] = _mean_interval(recall, config.seed)
    digest = hashlib.sha256()
    for subject in bench.subjects:
        for path in subject.images:
            digest.update(path.read_bytes())
    return {
        "benchmark": "concepts",
        "data": str(bench.root),
        "data_hash": digest.hexdigest()[:16],
        "embedder": vectors.embedder.model_id,
        "views": list(vectors.views),
        "subjects": [s.name for s in bench.subjects],
        "references": config.references,
        "queries": len(split.owner),
        "identification_top1": _mean_interval(top1, config.seed),
        "retrieval": retrieval,
        "recognition": _recognition(split, config),
    }


def _cell(estimate: dict[str, float]) -> str:
    return f"{estimate['value']:.3f} [{estimate['low']:.3f}, {estimate['high']:.3f}]"


def format_table(result: dict[str, Any]) -> str:
    lines = ["| measure | value [95% CI] |", "| --- | --- |"]
    lines.append(f"| top-1 identification | {_cell(result['identification_top1'])} |")
    for name, estimate in result["retrieval"].items():
        label = "retrieval mAP" if name == "map" else f"retrieval {name}"
        lines.append(f"| {label} | {_cell(estimate)} |")
    recognition = result["recognition"]
    for method in ("per-concept", "global"):
        for name in ("precision", "recall", "f1", "accuracy"):
            label = f"recognition {name} ({method} calibration, held-out subjects)"
            lines.append(f"| {label} | {_cell(recognition[method][name])} |")
    return "\n".join(lines)
