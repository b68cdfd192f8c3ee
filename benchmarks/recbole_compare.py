"""pgen's BPR and SASRec against RecBole 1.2.1 on ML-100K: same split, metrics, threads.

    .venv/bin/python benchmarks/recbole_compare.py [--threads 2] [--recbole-sasrec-epochs 1]
        [--models BPR,SASRec] [--skip-ours] [--skip-recbole] [--recbole-max-seconds S]

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

The runner also dumps the top-20 list RecBole ranked for every test user; this script
recomputes RecBole's reported test metrics from those lists with pgen's metric code and
checks that they agree to RecBole's rounding. The script exits non-zero when they do not,
or when RecBole's test item differs from ours for any user.
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

import numpy as np
import torch

from pgen.context.sqlite import SQLiteStore
from pgen.evaluate.metrics.ranking import hits_from_ranks, summarize
from pgen.recommend.arrays import Split, leave_one_out, sequences_from_store
from pgen.recommend.data import ingest, load_data
from pgen.recommend.protocol import evaluate
from pgen.recommend.recommenders import build

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


def write_atomic(split: Split, store: SQLiteStore, folder: Path, name: str) -> None:
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
        "--dump-topk",
    ]
    if args.recbole_max_seconds is not None:
        command += ["--max-seconds", str(args.recbole_max_seconds)]
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    start, load = time.perf_counter(), os.getloadavg()[0]
    print(f"RecBole {model}: up to {epochs} epochs", flush=True)
    # The runner prints one JSON line per epoch: keep them in a log a long run can be read by.
    with (args.work / f"recbole-{model}.log").open("w") as log:
        subprocess.run(command, check=True, env=env, cwd=args.work, stdout=log, stderr=log)
    result: dict[str, Any] = json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - start
    result["load"] = (load, os.getloadavg()[0])
    return result


def recheck_metrics(result: dict[str, Any]) -> list[str]:
    """RecBole's reported test metrics (named as ours) recomputed by pgen from its top-20;
    returns the disagreements (beyond RecBole's rounding to ``decimal_place`` digits)."""
    entries = list(result["test_topk"].values())
    depth = 20
    # A target outside the dumped top 20 counts as rank 21: a miss at every cutoff.
    ranks = np.array(
        [e["topk"].index(e["target"]) + 1 if e["target"] in e["topk"] else 0 for e in entries]
    )
    ranks[ranks == 0] = depth + 1
    ours = summarize(hits_from_ranks(ranks, depth), np.ones(len(ranks)), (5, 10, 20))
    tolerance = 0.5 * 10.0 ** -int(result["decimal_place"]) + 1e-9
    wrong = []
    for name, reported in result["test"].items():
        mine = ours[name]
        if abs(mine - reported) > tolerance:
            wrong.append(f"{name}: RecBole {reported} vs recomputed {mine:.6f}")
    return wrong


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
    budget = log.get("stopped") == "time budget"
    to_best = f"{log['seconds_to_best']:.1f}" + (" (cap)" if capped else "")
    to_best += " (time budget)" if budget else ""
    return (
        f"| {system} | {model} | {ranking} | {metrics['ndcg@10']:.4f} | {metrics['hr@10']:.4f} "
        f"| {epochs} | {log['best_epoch']} | {log['seconds_per_epoch']:.2f} | {to_best} "
        f"| {log['load'][0]:.1f} → {log['load'][1]:.1f} |"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/ml-100k")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/pgen-bench-venvs/recbole"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/pgen-recbole-compare"))
    parser.add_argument("--models", default="BPR,SASRec", help="comma-separated subset")
    parser.add_argument("--recbole-bpr-epochs", type=int, default=60)
    parser.add_argument(
        "--recbole-sasrec-epochs",
        type=int,
        default=1,
        help="RecBole's SASRec takes minutes per epoch here: keep it small",
    )
    parser.add_argument(
        "--recbole-max-seconds",
        type=float,
        default=None,
        help="wall-clock budget of each RecBole training run (stops between epochs)",
    )
    parser.add_argument("--skip-recbole", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    args = parser.parse_args()
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not set(args.models) <= {"BPR", "SASRec"}:
        parser.error("--models: BPR and/or SASRec")
    return args


def main() -> None:
    args = parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data}: ML-100K not found")
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    store_path = args.work / "ml100k.sqlite"
    store_path.unlink(missing_ok=True)
    with SQLiteStore(store_path) as store:
        ingest(store, load_data(args.data))
        split = leave_one_out(sequences_from_store(store))
        write_atomic(split, store, args.work / "atomic" / "ml100k", "ml100k")
    ours: dict[str, Any] = {}
    if not args.skip_ours:
        for model in args.models:
            ours[model] = run_ours(model.lower(), split, {})
        (args.work / "ours.json").write_text(json.dumps(ours, default=str))
    recbole: dict[str, Any] = {}
    failures: list[str] = []
    if not args.skip_recbole:
        python = ensure_recbole(args.venv)
        ours_targets = {
            split.data.user_ids[u]: split.data.item_ids[i]
            for u, i in zip(split.eval_users, split.test_items, strict=True)
        }
        for model in args.models:
            cap = args.recbole_bpr_epochs if model == "BPR" else args.recbole_sasrec_epochs
            result = run_recbole(python, model, cap, args)
            recbole[model] = result
            same = result.pop("test_targets") == ours_targets
            print(f"RecBole {model}: same test item for every user as ours: {same}")
            if not same:
                failures.append(f"RecBole {model}: test items differ from ours")
            result["test"] = {k.replace("hit@", "hr@"): v for k, v in result["test"].items()}
            if "test_topk" not in result:
                failures.append(f"RecBole {model}: no top-k dump: {result.get('topk_error')}")
                continue
            wrong = recheck_metrics(result)
            print(f"RecBole {model}: reported metrics recomputed by pgen: {wrong or 'all equal'}")
            failures += [f"RecBole {model}: {w}" for w in wrong]
            # The top-k lists served the check; the result file stays small without them.
            result.pop("test_topk", None)
    print_table(args, ours, recbole)
    (args.work / "results.json").write_text(
        json.dumps({"ours": ours, "recbole": recbole, "threads": args.threads}, default=str)
    )
    if failures:
        sys.exit("\n".join(failures))


def print_table(args: argparse.Namespace, ours: dict[str, Any], recbole: dict[str, Any]) -> None:
    print(
        f"\nML-100K, leave-one-out, full ranking; {args.threads} threads; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)\n"
    )
    print(
        "| system | model | ranking | NDCG@10 | HR@10 | epochs | best | s/epoch | s to best "
        "| load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        if model in recbole:
            cap = args.recbole_bpr_epochs if model == "BPR" else args.recbole_sasrec_epochs
            ranking = "history excluded" if model == "BPR" else "history kept"
            print(row("RecBole 1.2.1", model, ranking, recbole[model]["test"], recbole[model], cap))
            print(f"(RecBole {model} stopped by: {recbole[model].get('stopped')})")
        if model not in ours:
            continue
        print(row("pgen", model, "history excluded", ours[model]["test"], ours[model]["log"]))
        if model == "SASRec":
            kept = ours[model]["test_history_kept"]
            print(row("pgen", model, "history kept", kept, ours[model]["log"]))


if __name__ == "__main__":
    main()
