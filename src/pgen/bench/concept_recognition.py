"""``pgen bench concepts``: recognition, identification and retrieval of a user's concepts.

From a DreamBench-layout folder: per subject, the first ``references`` photos are the
concept's references and the rest are queries. Three measurements:

* **identification**: each query photo's most similar concept is its own subject (top-1);
* **retrieval**: each concept ranks the pooled query photos of all subjects (recall@k, AP);
* **recognition** ("is <concept> in this photo?") with a calibrated decision, open set
  and on subjects no fitting saw (see ``_recognition``): per (photo, concept) pair
  precision, recall, F1 and accuracy, and open-set identification (the accepted concept
  is the right one, or none is accepted for a stranger's photo).

95% intervals are percentile bootstraps over query photos (over concepts for mAP).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pgen.bench.dreambench import BenchSubject, DreamBench
from pgen.usermodel.concepts import (
    Calibration,
    ConceptMemory,
    ImageVectors,
    fit_alpha,
    fit_global_threshold,
)

SAMPLES = 1000


@dataclass(frozen=True)
class ConceptsBenchSettings:
    references: int = 3
    folds: int = 3
    repeats: int = 5  # fold assignments (the first in name order, then seeded shuffles)
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


def _memory(
    split: _Split,
    chosen: Sequence[int],
    calibration: Calibration,
    pool: np.ndarray | None = None,
) -> ConceptMemory:
    entries = [
        (split.subjects[i].name, split.subjects[i].class_word, "", (), split.refs[i])
        for i in chosen
    ]
    return ConceptMemory.build(entries, calibration, pool)


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


def _pair_estimates(
    pairs: list[tuple[int, np.ndarray, np.ndarray]], identified: list[bool], seed: int
) -> dict[str, Any]:
    """Recognition metrics over rows of (query photo, predicted, labels), with intervals
    from a cluster bootstrap: a photo asked in several runs is drawn with all its rows,
    since those rows are not independent."""
    photos = sorted({photo for photo, _, _ in pairs})
    rows_of: dict[int, list[int]] = {photo: [] for photo in photos}
    for r, (photo, _, _) in enumerate(pairs):
        rows_of[photo].append(r)

    def rows(idx: np.ndarray) -> list[int]:
        return [r for i in idx for r in rows_of[photos[i]]]

    out: dict[str, Any] = {"pairs": int(sum(len(p) for _, p, _ in pairs)), "photos": len(photos)}
    for name in ("precision", "recall", "f1", "accuracy"):

        def statistic(idx: np.ndarray, name: str = name) -> float:
            chosen = rows(idx)
            return _pair_metrics(
                np.concatenate([pairs[r][1] for r in chosen]),
                np.concatenate([pairs[r][2] for r in chosen]),
            )[name]

        out[name] = _interval(statistic, len(photos), seed)
    right = np.array(identified, dtype=float)
    out["open_set_identification"] = _interval(
        lambda idx: float(right[rows(idx)].mean()), len(photos), seed
    )
    return out


METHODS = ("per-concept", "per-concept+pool", "global")


def _recognition(split: _Split, config: ConceptsBenchSettings) -> dict[str, Any]:
    """Open-set recognition on subjects no fitting saw. The subjects are split into folds;
    for every ordered triple of distinct folds (fit, user, strangers): alpha and the global
    threshold are fit on the ``fit`` subjects as one user; a user holding the ``user``
    subjects is then asked about their own query photos and the ``strangers``' photos
    (which should be "none of my concepts"). ``per-concept+pool`` adds the fit subjects'
    reference photos as the operator's negative pool (data of no user in the test)."""
    n = len(split.subjects)
    if min(config.folds, n) < 3:
        raise ValueError(f"recognition needs at least 3 folds of subjects, got {config.folds}")
    # Which subjects share a fold decides which look-alikes meet (a vase among the
    # strangers of a teapot's owner): each repeat deals the subjects out anew.
    rng = np.random.default_rng(config.seed)
    triples = []
    for repeat in range(config.repeats):
        order = np.arange(n) if repeat == 0 else rng.permutation(n)
        folds = [sorted(int(i) for i in order[f :: config.folds]) for f in range(config.folds)]
        triples += list(itertools.permutations(folds, 3))
    rows: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {m: [] for m in METHODS}
    identified: dict[str, list[bool]] = {m: [] for m in METHODS}
    runs = []
    for fit, held, strangers in triples:
        fit_memory = _memory(split, fit, Calibration())
        fit_rows = np.isin(split.owner, fit)
        fit_labels = split.owner[fit_rows, None] == np.array(fit)[None]
        alpha = fit_alpha(fit_memory.confidences(split.queries[fit_rows]), fit_labels)
        threshold = fit_global_threshold(fit_memory.scores(split.queries[fit_rows]), fit_labels)
        calibration = Calibration(alpha=alpha, fitted_on=[split.subjects[i].name for i in fit])
        pool = np.concatenate([split.refs[i] for i in fit])
        asked = np.flatnonzero(np.isin(split.owner, held + strangers))
        labels = split.owner[asked, None] == np.array(held)[None]
        decisions = {}
        for method, memory in (
            ("per-concept", _memory(split, held, calibration)),
            ("per-concept+pool", _memory(split, held, calibration, pool)),
        ):
            confidence = memory.confidences(split.queries[asked])
            decisions[method] = (confidence >= alpha, confidence)
        scores = _memory(split, held, calibration).scores(split.queries[asked])
        decisions["global"] = (scores >= threshold, scores)
        for method, (accepted, strength) in decisions.items():
            best = np.where(accepted, strength, -np.inf).argmax(axis=1)
            for r in range(len(asked)):
                rows[method].append((int(asked[r]), accepted[r], labels[r]))
                truth = int(np.flatnonzero(labels[r])[0]) if labels[r].any() else -1
                guess = int(best[r]) if accepted[r].any() else -1
                identified[method].append(guess == truth)
        runs.append(
            {
                "fit": [split.subjects[i].name for i in fit],
                "user": [split.subjects[i].name for i in held],
                "strangers": [split.subjects[i].name for i in strangers],
                "alpha": alpha,
                "global_threshold": threshold,
            }
        )
    result: dict[str, Any] = {"runs": runs}
    for method in METHODS:
        result[method] = _pair_estimates(rows[method], identified[method], config.seed)
    result["f1_per_concept_minus_global"] = _paired_f1(
        rows["per-concept"], rows["global"], config.seed
    )
    return result


def _paired_f1(
    a: list[tuple[int, np.ndarray, np.ndarray]],
    b: list[tuple[int, np.ndarray, np.ndarray]],
    seed: int,
) -> dict[str, float]:
    """F1(a) - F1(b) on the same rows, with a paired cluster-bootstrap 95% interval (the
    same photos drawn for both): an interval above 0 means a is better here."""
    photos = sorted({photo for photo, _, _ in a})
    rows_of: dict[int, list[int]] = {photo: [] for photo in photos}
    for r, (photo, _, _) in enumerate(a):
        rows_of[photo].append(r)

    def delta(idx: np.ndarray) -> float:
        chosen = [r for i in idx for r in rows_of[photos[i]]]
        f1 = [
            _pair_metrics(
                np.concatenate([side[r][1] for r in chosen]),
                np.concatenate([side[r][2] for r in chosen]),
            )["f1"]
            for side in (a, b)
        ]
        return f1[0] - f1[1]

    return _interval(delta, len(photos), seed)


def run_concepts_bench(
    bench: DreamBench, vectors: ImageVectors, config: ConceptsBenchSettings | None = None
) -> dict[str, Any]:
    config = config or ConceptsBenchSettings()
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
        # For deployment (not evaluation): alpha fit on every subject here.
        "calibration": asdict(_fit_all(split)),
    }


def _fit_all(split: _Split) -> Calibration:
    everyone = list(range(len(split.subjects)))
    memory = _memory(split, everyone, Calibration())
    labels = split.owner[:, None] == np.array(everyone)[None]
    alpha = fit_alpha(memory.confidences(split.queries), labels)
    return Calibration(alpha=alpha, fitted_on=[s.name for s in split.subjects])


def _cell(estimate: dict[str, float]) -> str:
    return f"{estimate['value']:.3f} [{estimate['low']:.3f}, {estimate['high']:.3f}]"


def format_table(result: dict[str, Any]) -> str:
    lines = ["| measure | value [95% CI] |", "| --- | --- |"]
    lines.append(f"| top-1 identification | {_cell(result['identification_top1'])} |")
    for name, estimate in result["retrieval"].items():
        label = "retrieval mAP" if name == "map" else f"retrieval {name}"
        lines.append(f"| {label} | {_cell(estimate)} |")
    recognition = result["recognition"]
    for method in METHODS:
        for name in ("precision", "recall", "f1", "accuracy", "open_set_identification"):
            label = f"recognition {name.replace('_', ' ')} ({method})"
            lines.append(f"| {label} | {_cell(recognition[method][name])} |")
    paired = recognition["f1_per_concept_minus_global"]
    lines.append(f"| recognition F1, per-concept minus global (paired) | {_cell(paired)} |")
    return "\n".join(lines)
