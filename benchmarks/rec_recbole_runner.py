"""Runs one RecBole 1.2.1 model inside RecBole's own venv (started by recbole_compare.py).

Writes a JSON file: per-epoch training time and validation NDCG@10, the best epoch, the
test metrics and the test target of every user (so the caller can check that RecBole's
split is exactly ours).
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True, choices=["BPR", "SASRec"])
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--stopping-step", type=int, default=10)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--out", required=True)
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

    def timed_train(*a: Any, **k: Any) -> Any:
        start = time.perf_counter()
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
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
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
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
