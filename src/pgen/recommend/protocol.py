"""The evaluation protocol: leave-one-out targets, full ranking, history excluded.

For each evaluated user the model scores every item; the items the user already had
before the target (their history) are removed from the ranking, and the target's rank
decides the metrics. When the target itself is in the history (a repeat consumption), the
default (``repeat_targets="keep"``) leaves it ranked, so the user's next item can still be
found; RecBole masks the whole history, the repeated target included, which makes such a
user a certain miss. ``repeat_targets="mask"`` follows RecBole exactly; the result's mode
names the choice either way. Equal scores are ordered by item index, so ranks never depend on
chance. The sampled-negatives mode ranks the target among ``n`` uniformly drawn unseen
items instead of the whole catalog; its metric names say so (``ndcg@10[sampled-100]``)
and so does ``EvalResult.mode``, so a sampled number is never read as a full-ranking one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from pgen.evaluate.metrics.ranking import DEFAULT_KS, hits_from_ranks, summarize
from pgen.recommend.arrays import Split


class Scorer(Protocol):
    """Anything that scores all items for a batch of users given their histories."""

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        """Float scores of shape (len(users), n_items); higher ranks first."""
        ...


@dataclass(frozen=True)
class EvalResult:
    phase: str
    mode: str  # "full ranking (repeat targets kept)", ... or "sampled: N uniform negatives"
    n_users: int
    metrics: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "mode": self.mode,
            "n_users": self.n_users,
            "metrics": self.metrics,
        }


REPEAT_MODES = {
    "keep": "repeat targets kept",
    "mask": "repeat targets masked, as RecBole",
}


def mask_history(scores: torch.Tensor, histories: list[np.ndarray], keep: np.ndarray) -> None:
    """Set the scores of each row's history items to -inf, except the item ``keep[row]``
    (pass -1 to mask every history item, as RecBole does)."""
    rows = np.concatenate([np.full(len(h), r, dtype=np.int64) for r, h in enumerate(histories)])
    cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
    if len(rows):
        # A repeat consumption of the target must not hide the target itself.
        drop = cols != keep[rows]
        scores[torch.from_numpy(rows[drop]), torch.from_numpy(cols[drop])] = float("-inf")


def full_ranks(scores: torch.Tensor, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each row's target; ties go to the lower item index."""
    target = torch.from_numpy(targets)
    target_scores = scores.gather(1, target[:, None])
    ahead = (scores > target_scores).sum(dim=1)
    index = torch.arange(scores.shape[1])[None, :]
    tied_before = ((scores == target_scores) & (index < target[:, None])).sum(dim=1)
    return (ahead + tied_before + 1).numpy().astype(np.int64)


def sampled_ranks(
    scores: torch.Tensor,
    targets: np.ndarray,
    histories: list[np.ndarray],
    negatives: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Rank of each target among itself and ``negatives`` unseen items drawn uniformly."""
    n_items = scores.shape[1]
    ranks = np.empty(len(targets), dtype=np.int64)
    for row, (target, history) in enumerate(zip(targets, histories, strict=True)):
        allowed = np.ones(n_items, dtype=bool)
        allowed[history] = False
        allowed[target] = False
        pool = np.flatnonzero(allowed)
        drawn = rng.choice(pool, size=min(negatives, len(pool)), replace=False)
        candidates = np.sort(np.append(drawn, target))  # index order decides ties
        values = scores[row, torch.from_numpy(candidates)]
        position = int(np.searchsorted(candidates, target))
        own = values[position]
        ahead = int((values > own).sum()) + int((values[:position] == own).sum())
        ranks[row] = ahead + 1
    return ranks


def evaluate(
    model: Scorer,
    split: Split,
    phase: str = "test",
    ks: tuple[int, ...] = DEFAULT_KS,
    negatives: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    max_users: int | None = None,
    exclude_history: bool = True,
    repeat_targets: str = "keep",
) -> EvalResult:
    """Score ``phase`` ("valid" or "test") targets of the split's evaluated users.

    ``max_users`` evaluates a fixed random subset (for slow models such as an LLM
    re-ranker); the result's ``n_users`` says how many were used. ``exclude_history=False``
    keeps seen items in the ranking, as RecBole does for sequential models; the mode says so.
    ``repeat_targets`` ("keep" or "mask") decides whether a target that is also in the
    user's history stays ranked (ours) or is masked with it (RecBole); see the module doc.
    """
    if repeat_targets not in REPEAT_MODES:
        raise ValueError(f"repeat_targets: one of {sorted(REPEAT_MODES)}, not {repeat_targets!r}")
    users = split.eval_users
    histories = split.history(phase)
    targets = split.targets(phase)
    rng = np.random.default_rng(seed)
    order = np.arange(len(users))
    if max_users is not None and max_users < len(users):
        order = np.sort(rng.choice(len(users), size=max_users, replace=False))
    ranks = []
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch_hist = [histories[r] for r in rows]
            scores = model.score(users[rows], batch_hist).detach().float().clone()
            if negatives is None:
                if exclude_history:
                    keep = targets[rows] if repeat_targets == "keep" else np.full(len(rows), -1)
                    mask_history(scores, batch_hist, keep)
                ranks.append(full_ranks(scores, targets[rows]))
            else:
                ranks.append(sampled_ranks(scores, targets[rows], batch_hist, negatives, rng))
    all_ranks = np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)
    hits = hits_from_ranks(all_ranks, max(ks))
    metrics = summarize(hits, np.ones(len(all_ranks)), ks)
    if negatives is None:
        mode = (
            f"full ranking ({REPEAT_MODES[repeat_targets]})"
            if exclude_history
            else "full ranking, history kept"
        )
        return EvalResult(phase, mode, len(all_ranks), metrics)
    label = f"sampled-{negatives}"
    metrics = {f"{name}[{label}]": value for name, value in metrics.items()}
    return EvalResult(phase, f"sampled: {negatives} uniform negatives", len(all_ranks), metrics)
