"""pgen's BPR and SASRec against RecBole 1.2.1 on ML-100K: same split, metrics, threads.

    .venv/bin/python benchmarks/recbole_compare.py [--threads 2] [--recbole-sasrec-epochs 1]

RecBole goes into its own venv (``--venv``, default /tmp/pgen-bench-venvs/recbole), created
on first use: torch 2.13.0 first (local CPU wheel), then RecBole with the pins it needs
next to torch 2.13 (numpy<2, pandas<2.3, scipy<1.14), then setuptools<70 on its own,
because torch 2.13 declares setuptools>=77 and pip would otherwise refuse the pair.

ML-100K is ingested into a pgen store, read back in our order (per user by time, ties by
item id) and written as RecBole atomic files in that order; RecBole's leave-one-out keeps
it (its time sort is stable), and the script checks that both systems test every user on
the same item. Both report test metrics of the epoch with the best validation NDCG@10.
RecBole excludes seen items from the ranking for BPR but not for sequential models
(SASRec), so our SASRec is scored both ways. Times are training time only (validation
excluded): per epoch, and up to the best epoch. The 1-minute load average before and after
each run is printed with it: on a shared machine, a busy neighbour slows multi-threaded
PyTorch far more than its share of the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pgen.context import Store
from pgen.recommend.arrays import Split, leave_one_out, sequences_from_store
from pgen.recommend.data import ingest, load_data
from pgen.recommend.models import build
from pgen.recommend.protocol import evaluate

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def ensure_recbole(venv: Path) -> Path:
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import recbole; assert recbole.__version__ == '1.2.1'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"installing RecBole 1.2.1 into {venv} (minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run(
        [*pip, "recbole==1.2.1", "numpy<2", "pandas<2.3", "scipy<1.14", "torch==2.13.0"],
        check=True,
    )
    subprocess.run([*pip, "setuptools<70"], check=True)
    subprocess.run(check, check=True)
    return python


def write_atomic(split: Split, store: Store, folder: Path, name: str) -> None:
    """Interactions in exactly our per-user order, with their original timestamps."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.inter").open("w") as handle:
        handle.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for user in split.data.user_ids:
            for row in store.interactions(user):  # ordered by (time, item id), as ours
                stamp = int(row.time.timestamp()) if row.time else 0
                handle.write(f"{user}\t{row.item_id}\t{row.rating}\t{stamp}\n")


def run_recbole(python: Path, model: str, epochs: int, args: argparse.Namespace) -> dict[str, Any]:
    out = args.work / f"recbole-{model}.json"
    command = [
        str(python),
        str(HERE / "rec_recbole_runner.py"),
        "--data-dir",
        str(args.work / "atomic"),
        "--dataset",
        "ml100k",
        "--model",
        model,
        "--epochs",
        str(epochs),
        "--threads",
        str(args.threads),
        "--out",
        str(out),
    ]
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    start, load = time.perf_counter(), os.getloadavg()[0]
    print(f"RecBole {model}: up to {epochs} epochs", flush=True)
    subprocess.run(command, check=True, env=env, cwd=args.work, capture_output=True)
    result: dict[str, Any] = json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - start
    result["load"] = (load, os.getloadavg()[0])
    return result


def run_ours(name: str, split: Split, params: dict[str, Any]) -> dict[str, Any]:
    model = build(name, split.data.n_users, split.data.n_items, **params)
    load = os.getloadavg()[0]
    print(f"pgen {name}: training", flush=True)
    log = model.fit(split)
    log["load"] = (load, os.getloadavg()[0])
    test = evaluate(model, split, "test").metrics
    kept = evaluate(model, split, "test", exclude_history=False).metrics
    return {"log": log, "test": test, "test_history_kept": kept}


def row(
    system: str,
    model: str,
    ranking: str,
    metrics: dict[str, float],
    log: dict[str, Any],
    epochs_cap: int | None = None,
) -> str:
    epochs = len(log["epochs"])
    capped = epochs_cap is not None and epochs >= epochs_cap
    to_best = f"{log['seconds_to_best']:.1f}" + (" (cap)" if capped else "")
    return (
        f"| {system} | {model} | {ranking} | {metrics['ndcg@10']:.4f} | {metrics['hr@10']:.4f} "
        f"| {epochs} | {log['best_epoch']} | {log['seconds_per_epoch']:.2f} | {to_best} "
        f"| {log['load'][0]:.1f} → {log['load'][1]:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/ml-100k")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/pgen-bench-venvs/recbole"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/pgen-recbole-compare"))
    parser.add_argument("--recbole-bpr-epochs", type=int, default=60)
    parser.add_argument(
        "--recbole-sasrec-epochs",
        type=int,
        default=1,
        help="RecBole's SASRec takes minutes per epoch here: keep it small",
    )
    parser.add_argument("--skip-recbole", action="store_true")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data}: ML-100K not found")
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    store_path = args.work / "ml100k.sqlite"
    store_path.unlink(missing_ok=True)
    with Store(store_path) as store:
        ingest(store, load_data(args.data))
        split = leave_one_out(sequences_from_store(store))
        write_atomic(split, store, args.work / "atomic" / "ml100k", "ml100k")
    ours = {
        "BPR": run_ours("bpr", split, {}),
        "SASRec": run_ours("sasrec", split, {}),
    }
    (args.work / "ours.json").write_text(json.dumps(ours, default=str))
    recbole: dict[str, Any] = {}
    if not args.skip_recbole:
        python = ensure_recbole(args.venv)
        recbole["BPR"] = run_recbole(python, "BPR", args.recbole_bpr_epochs, args)
        recbole["SASRec"] = run_recbole(python, "SASRec", args.recbole_sasrec_epochs, args)
        ours_targets = {
            split.data.user_ids[u]: split.data.item_ids[i]
            for u, i in zip(split.eval_users, split.test_items, strict=True)
        }
        for name, result in recbole.items():
            same = result.pop("test_targets") == ours_targets
            print(f"RecBole {name}: same test item for every user as ours: {same}")
    print(
        f"\nML-100K, leave-one-out, full ranking; {args.threads} threads; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)\n"
    )
    print(
        "| system | model | ranking | NDCG@10 | HR@10 | epochs | best | s/epoch | s to best "
        "| load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in ("BPR", "SASRec"):
        if model in recbole:
            cap = args.recbole_bpr_epochs if model == "BPR" else args.recbole_sasrec_epochs
            ranking = "history excluded" if model == "BPR" else "history kept"
            recbole[model]["test"] = {
                k.replace("hit@", "hr@"): v for k, v in recbole[model]["test"].items()
            }
            print(row("RecBole 1.2.1", model, ranking, recbole[model]["test"], recbole[model], cap))
        print(row("pgen", model, "history excluded", ours[model]["test"], ours[model]["log"]))
        if model == "SASRec":
            print(
                row(
                    "pgen",
                    model,
                    "history kept",
                    ours[model]["test_history_kept"],
                    ours[model]["log"],
                )
            )
    (args.work / "results.json").write_text(
        json.dumps({"ours": ours, "recbole": recbole, "threads": args.threads}, default=str)
    )


if __name__ == "__main__":
    main()
