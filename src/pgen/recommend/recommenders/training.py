"""Epoch loop with early stopping on validation NDCG@10, keeping the best weights."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch

from pgen.recommend.arrays import Split
from pgen.recommend.protocol import evaluate
from pgen.recommend.recommenders.base import TrainableRecommender

STOP_METRIC = "ndcg@10"
# Settings of every model trained by gradient descent; each model adds its own.
TRAINING_DEFAULTS: dict[str, Any] = {
    "weight_decay": 0.0,
    "epochs": 200,
    "patience": 10,
    "eval_every": 1,
    "seed": 0,
}


def adam(model: TrainableRecommender) -> torch.optim.Adam:
    return torch.optim.Adam(
        model.parameters(),
        lr=float(model.params["lr"]),
        weight_decay=float(model.params["weight_decay"]),
    )


def train_with_early_stopping(
    model: TrainableRecommender,
    split: Split,
    run_epoch: Callable[[int], float],
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Call ``run_epoch(epoch) -> mean loss`` until validation stops improving.

    Validation runs every ``eval_every`` epochs (a model setting, like ``epochs`` and
    ``patience``); after ``patience`` validations without a better NDCG@10 training stops
    at most after ``epochs``, and the best weights are restored. The returned log
    has per-epoch losses and times, so benchmarks can report time per epoch and time to
    convergence (training time up to the best epoch, validation excluded).
    """
    max_epochs = int(model.params["epochs"])
    patience = int(model.params["patience"])
    eval_every = int(model.params["eval_every"])
    scorer: Any = model
    best_score, best_epoch, best_state = -1.0, 0, copy.deepcopy(model.state_dict())
    epochs: list[dict[str, Any]] = []
    train_seconds = 0.0
    time_to_best = 0.0
    waited = 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        start = time.perf_counter()
        loss = run_epoch(epoch)
        seconds = time.perf_counter() - start
        train_seconds += seconds
        row: dict[str, Any] = {"epoch": epoch, "loss": loss, "train_s": seconds}
        if epoch % eval_every == 0 or epoch == max_epochs:
            model.eval()
            start = time.perf_counter()
            valid = evaluate(scorer, split, "valid").metrics[STOP_METRIC]
            row.update(valid_ndcg10=valid, eval_s=time.perf_counter() - start)
            if valid > best_score:
                best_score, best_epoch, waited = valid, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
                time_to_best = train_seconds
            else:
                waited += 1
        epochs.append(row)
        if progress is not None:
            shown = f" valid ndcg@10 {row['valid_ndcg10']:.4f}" if "valid_ndcg10" in row else ""
            progress(f"epoch {epoch} loss {loss:.4f} ({seconds:.2f}s){shown}")
        if waited >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return {
        "epochs": epochs,
        "best_epoch": best_epoch,
        "best_valid_ndcg10": best_score,
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / max(len(epochs), 1),
        "seconds_to_best": time_to_best,
    }
