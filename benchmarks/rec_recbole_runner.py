"""Runs one RecBole 1.2.1 model inside RecBole's own venv (started by recbole_compare.py).

Writes a JSON file: per-epoch training time and validation NDCG@10, the best epoch, the
test metrics and the test target of every user (so the caller can check that RecBole's
split is exactly ours). With ``--dump-topk`` it also records, for every test user, the
top-20 items RecBole ranked (after its own masking) and the target, so the caller can
recompute RecBole's reported metrics with pgen's formulas. ``--max-seconds`` stops
training before an epoch that would start past the budget; the test then uses the best
checkpoint saved so far and the JSON says ``"stopped": "time budget"``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole's checkpoints

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed


class TimeBudget(Exception):
    """Raised inside RecBole's epoch loop when the wall-clock budget is spent."""


def capture_topk(trainer: Any, ranked: dict[int, dict[str, Any]], depth: int = 20) -> None:
    """Record each evaluated user's top ``depth`` items from the masked scores RecBole's
    evaluator itself ranks (``_full_sort_batch_eval`` returns them after masking)."""
    batch_eval = trainer._full_sort_batch_eval
    user_field = trainer.config["USER_ID_FIELD"]

    def wrapped(batched_data: Any) -> Any:
        interaction, scores, positive_u, positive_i = batch_eval(batched_data)
        try:
            top = torch.topk(scores, depth, dim=-1).indices.cpu().numpy()
            users = interaction[user_field].cpu().numpy()
            for row, item in zip(positive_u.tolist(), positive_i.tolist(), strict=True):
                ranked[int(users[row])] = {"target": int(item), "topk": top[row].tolist()}
        except Exception as error:  # a failed dump must not lose a long run's result
            ranked[-1] = {"error": repr(error)}
        return interaction, scores, positive_u, positive_i

    trainer._full_sort_batch_eval = wrapped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True, choices=["BPR", "SASRec"])
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--stopping-step", type=int, default=10)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--dump-topk", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings: dict[str, Any] = {
        "data_path": args.data_dir,
        "checkpoint_dir": str(Path(args.out).parent / "recbole-saved"),
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "metrics": ["Hit", "NDCG", "MRR", "Recall", "Precision"],
        "topk": [5, 10, 20],
        "valid_metric": "NDCG@10",
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "eval_batch_size": 4096,
        "show_progress": False,
        "seed": 2020,
        "reproducibility": True,
        "worker": 0,
        "state": "WARNING",
    }
    if args.model == "SASRec":
        settings["train_neg_sample_args"] = None  # cross-entropy over all items
    config = Config(model=args.model, dataset=args.dataset, config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    epochs: list[dict[str, float]] = []
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    began = time.perf_counter()

    def timed_train(*a: Any, **k: Any) -> Any:
        start = time.perf_counter()
        if args.max_seconds is not None and epochs:
            # Stop before an epoch that would probably end past the budget.
            mean = (start - began) / len(epochs)
            if start - began + mean > args.max_seconds:
                raise TimeBudget
        loss = train_epoch(*a, **k)
        epochs.append({"train_s": time.perf_counter() - start})
        return loss

    def timed_valid(*a: Any, **k: Any) -> Any:
        start = time.perf_counter()
        score, result = valid_epoch(*a, **k)
        epochs[-1].update(valid_ndcg10=float(score), eval_s=time.perf_counter() - start)
        # One line per epoch, so a long run that is stopped early still says how far it got.
        print(json.dumps({"epoch": len(epochs), **epochs[-1]}), flush=True)
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
    stopped = "early stopping or epoch cap"
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    except TimeBudget:
        stopped = "time budget"  # the best checkpoint so far is on disk (saved=True)
    ranked: dict[int, dict[str, Any]] = {}
    if args.dump_topk:
        capture_topk(trainer, ranked)
    # The best checkpoint so far is on disk in either case (saved=True).
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    scores = [e.get("valid_ndcg10", -1.0) for e in epochs]
    best = scores.index(max(scores)) + 1
    ds = test_data._dataset
    users = ds.id2token(ds.uid_field, ds.inter_feat[ds.uid_field].numpy())
    items = ds.id2token(ds.iid_field, ds.inter_feat[ds.iid_field].numpy())
    result = {
        "model": args.model,
        "threads": torch.get_num_threads(),
        "epochs": epochs,
        "best_epoch": best,
        "seconds_per_epoch": sum(e["train_s"] for e in epochs) / len(epochs),
        "seconds_to_best": sum(e["train_s"] for e in epochs[:best]),
        "test": {k.lower(): float(v) for k, v in test.items()},
        "test_targets": dict(zip(map(str, users), map(str, items), strict=True)),
        "stopped": stopped,
        "decimal_place": config["metric_decimal_place"],
    }
    if args.dump_topk and -1 in ranked:
        result["topk_error"] = ranked[-1]["error"]
    elif args.dump_topk:
        token = ds.id2token
        result["test_topk"] = {
            str(token(ds.uid_field, user)): {
                "target": str(token(ds.iid_field, entry["target"])),
                "topk": [str(t) for t in token(ds.iid_field, entry["topk"])],
            }
            for user, entry in ranked.items()
        }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
