"""Training the retriever selector (``pgen.usermodel.selector``) from outcomes.

The data are one row per training request: its features (``request_features``) and the
outcome of every choice (a retriever at a k, or none), whatever the outcome is; ``pgen
bench rspg`` uses the gold output's mean token log-likelihood under the text model. Each
choice gets a ridge regression of its *advantage* (its outcome minus the row's mean over
choices) on standardized features; its intercept is its mean advantage, so with a large
penalty the selector always picks the best single choice of the training split, and
features move it off that choice only as far as they earn. The penalty is chosen by
cross-validation over groups (users), scored by the mean outcome of what it picks, and
an infinite penalty (features ignored) is one of the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pgen.usermodel.selector import FEATURES, Choice, LinearSelector

PENALTIES = (0.1, 1.0, 10.0, 100.0, float("inf"))  # ridge strengths tried; inf: no features
FOLDS = 5


@dataclass(frozen=True)
class SelectorFit:
    selector: LinearSelector
    penalty: float
    cv_outcome: dict[float, float]  # penalty -> mean held-out outcome of the picks


def fit_linear(
    features: np.ndarray,
    outcomes: np.ndarray,
    choices: Sequence[Choice],
    penalty: float,
    names: Sequence[str] = FEATURES,
) -> LinearSelector:
    """Ridge regression of each choice's advantage on standardized features (``names``:
    the features' columns, all of ``FEATURES`` for a selector that can be installed)."""
    if features.ndim != 2 or outcomes.shape != (len(features), len(choices)):
        raise ValueError(
            f"features {features.shape} and outcomes {outcomes.shape} do not fit "
            f"{len(choices)} choices"
        )
    if len(features) == 0:
        raise ValueError("no training rows")
    mean = features.mean(axis=0)
    spread = features.std(axis=0)
    scale = np.where(spread > 1e-9, spread, 1.0)
    standard = (features - mean) / scale
    advantage = outcomes - outcomes.mean(axis=1, keepdims=True)
    bias = advantage.mean(axis=0)
    width = features.shape[1]
    if np.isinf(penalty):
        weights = np.zeros((len(choices), width))
    else:
        gram = standard.T @ standard + penalty * np.eye(width)
        weights = np.linalg.solve(gram, standard.T @ (advantage - bias)).T
    return LinearSelector(list(choices), list(names), mean, scale, weights, bias)


def realized(selector: LinearSelector, features: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """Each row's outcome of the choice the selector makes."""
    picks = np.argmax(selector.scores(features), axis=1)
    return outcomes[np.arange(len(outcomes)), picks]


def fold_of(groups: Sequence[str]) -> np.ndarray:
    """A fold per row, the same for every row of one group (a user), spread evenly."""
    order = {group: n % FOLDS for n, group in enumerate(sorted(set(groups)))}
    return np.array([order[group] for group in groups])


def fit_selector(
    features: np.ndarray,
    outcomes: np.ndarray,
    choices: Sequence[Choice],
    groups: Sequence[str],
    penalties: Sequence[float] = PENALTIES,
    names: Sequence[str] = FEATURES,
) -> SelectorFit:
    """The penalty with the best cross-validated outcome (ties: the stronger penalty),
    then the selector refitted on every row with it."""
    folds = fold_of(groups)
    if len(set(folds.tolist())) < 2:  # one group: nothing to hold out, so no features
        fit = fit_linear(features, outcomes, choices, float("inf"), names)
        return SelectorFit(fit, float("inf"), {})
    scores: dict[float, float] = {}
    for penalty in penalties:
        held_out = np.zeros(len(features))
        for fold in set(folds.tolist()):
            test = folds == fold
            model = fit_linear(features[~test], outcomes[~test], choices, penalty, names)
            held_out[test] = realized(model, features[test], outcomes[test])
        scores[penalty] = float(held_out.mean())
    best = max(sorted(scores, reverse=True), key=lambda p: scores[p])
    return SelectorFit(fit_linear(features, outcomes, choices, best, names), best, scores)
