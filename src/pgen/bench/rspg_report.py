"""The RSPG / ROPG run: outcomes, training, held-out comparison, and the table.

On each task's held-out users: ``rag`` with ``retriever="rspg"`` (the selector trained
here and installed into the run's store, so the plans are exactly what a request gets)
against the task's best single choice on its training rows, and the oracle (each
request's best choice: how much room a perfect selector would have). With ROPG: the dense
retriever over the fine-tuned model against the base model at the same k, and against
the best single choice. Paired approximate-randomization tests and bootstrap CIs of the
difference (``pgen.evaluate.stats``), on held-out users only.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pgen.bench.rspg import (
    OUTCOMES_FILE,
    OutcomeCache,
    Outcomes,
    Split,
    features,
    fill_store,
    gold_likelihood,
    outcomes,
    request_for,
    ropg_triples,
)
from pgen.context.artifacts import ArtifactMeta, fingerprint
from pgen.engine import Engine
from pgen.evaluate.benchmarks import Example, metrics_for
from pgen.evaluate.metrics.base import Metric, mean_of_rows, mean_rows
from pgen.evaluate.stats import paired_test
from pgen.personalize import TextRequest
from pgen.training.ropg import RopgSettings, fine_tune
from pgen.training.rspg import fit_selector, realized
from pgen.usermodel.selector import (
    FEATURES,
    SELECTOR_KIND,
    TASK_FEATURES,
    Choice,
    install_folder,
    save_selector,
)

LIKELIHOOD = Metric(
    "gold log-likelihood",
    True,
    lambda preds, golds: mean_rows([float(p) for p in preds]),
    mean_of_rows,
    "mean over requests of the gold's mean token log-probability given the prompt",
)


@dataclass(frozen=True)
class RspgPlan:
    choices: list[Choice]
    out: Path
    ropg: RopgSettings | None = None  # None: no ROPG
    embed_base: str = ""  # the base embedding model's folder (ROPG starts from it)
    generate: int = 0  # per task, at most this many differing picks generated and scored
    max_new_tokens: int = 64
    progress: bool = True


def compared(system: np.ndarray, baseline: np.ndarray) -> dict[str, Any]:
    found = paired_test(LIKELIHOOD, mean_rows(system), mean_rows(baseline))
    return {
        "system": float(system.mean()) if len(system) else 0.0,
        "baseline": float(baseline.mean()) if len(baseline) else 0.0,
        **asdict(found),
    }


def _rspg_values(
    engine: Engine, examples: Sequence[Example], cache: OutcomeCache
) -> tuple[np.ndarray, list[str]]:
    """rag with retriever rspg on each example: its gold likelihood and what it chose."""
    values, picked = [], []
    for example in examples:
        request = TextRequest(
            example.user_id, example.instruction, "rag", retriever="rspg", query=example.query
        )
        plan = engine.prepare([request])[0]
        chosen = plan.details["selected"]
        picked.append(Choice(chosen["retriever"], chosen["k"]).name)
        values.append(gold_likelihood(engine, plan.chat, example.gold, cache))
    return np.array(values), picked


def _task_metric_check(
    engine: Engine, split: Split, rows: list[int], picks: list[str], best: Choice, plan: RspgPlan
) -> dict[str, Any]:
    """Generate with the selector's pick and with the best single choice where they
    differ (at most ``plan.generate``), and score both with the task's metric."""
    from pgen.config import GenerationSettings

    chosen = [r for r in rows if picks[r] != best.name][: plan.generate]
    metric = metrics_for(split.spec)[1 if split.spec.kind == "generation" else 0]
    if not chosen:
        return {"metric": metric.name, "generated": 0}
    examples = [split.test[r] for r in chosen]
    settings = GenerationSettings(max_new_tokens=plan.max_new_tokens)
    texts = {}
    for name, choice_of in (
        ("rspg", lambda r: Choice.parse(picks[r])),
        ("best", lambda r: best),
    ):
        requests = [request_for(split.test[r], choice_of(r)) for r in chosen]
        outputs = engine.generate_many(requests, generation=settings, save=False)
        texts[name] = [o.text for o in outputs]
    golds = [e.gold for e in examples]
    found = paired_test(
        metric, metric.statistics(texts["rspg"], golds), metric.statistics(texts["best"], golds)
    )
    return {"metric": metric.name, "generated": len(chosen), **asdict(found)}


def run_rspg(
    engine: Engine,
    splits: list[Split],
    plan: RspgPlan,
    make_engine: Callable[[Path], Engine] | None = None,
) -> dict[str, Any]:
    """Everything, written to ``plan.out`` (results.json; the selector and ROPG model in
    their folders); ``make_engine(model_folder)``: an engine over the same store whose
    embedder is that folder (for ROPG)."""
    plan.out.mkdir(parents=True, exist_ok=True)
    fill_store(engine, splits)
    cache = OutcomeCache(plan.out / OUTCOMES_FILE)
    choices = plan.choices
    train: dict[str, Outcomes] = {}
    test: dict[str, Outcomes] = {}
    for split in splits:
        train[split.task] = outcomes(engine, split.train, choices, cache, plan.progress)
        test[split.task] = outcomes(engine, split.test, choices, cache, plan.progress)
    pooled_x = np.concatenate([features(engine, s.train) for s in splits])
    pooled_y = np.concatenate([train[s.task].values for s in splits])
    groups = [e.source_user or e.user_id for s in splits for e in s.train]
    fit = fit_selector(pooled_x, pooled_y, choices, groups)
    # The same fit without the features that tell tasks apart, on the same outcomes: what
    # they add (the first selector, without them, learned one choice for every task).
    kept = [n for n, name in enumerate(FEATURES) if name not in TASK_FEATURES]
    names_kept = [FEATURES[n] for n in kept]
    without = fit_selector(pooled_x[:, kept], pooled_y, choices, groups, names=names_kept)
    meta = ArtifactMeta(
        kind=SELECTOR_KIND,
        user_id="",
        name=SELECTOR_KIND,
        base_model=engine.embedder.model_id,  # the dense features' model
        fingerprint=fingerprint([f"{v:.6f}" for v in pooled_y.ravel()]),
        settings={"choices": [c.name for c in choices], "penalty": fit.penalty},
        extra={
            "signal": f"gold mean token log-likelihood under {engine.text_model.name}",
            "train_rows": len(pooled_y),
            "tasks": [s.task for s in splits],
            "cv_outcome": {str(k): v for k, v in fit.cv_outcome.items()},
        },
    )
    save_selector(plan.out / "selector", fit.selector, meta)
    save_selector(install_folder(engine.store), fit.selector, meta)  # rag's rspg reads it
    results: dict[str, Any] = {
        "choices": [c.name for c in choices],
        "penalty": fit.penalty,
        "cv_outcome": meta.extra["cv_outcome"],
        "penalty_without_task_features": without.penalty,
        "tasks": {},
    }
    for split in splits:
        names = [c.name for c in choices]
        best = choices[int(np.argmax(train[split.task].values.mean(axis=0)))]
        values = test[split.task].values
        baseline = values[:, names.index(best.name)]
        rspg, picks = _rspg_values(engine, split.test, cache)
        test_x = features(engine, split.test)[:, kept]
        plain = realized(without.selector, test_x, values) if len(values) else np.zeros(0)
        task: dict[str, Any] = {
            "train": len(split.train),
            "test": len(split.test),
            "best_single": best.name,
            "rspg_vs_best": compared(rspg, baseline),
            "without_task_features_vs_best": compared(plain, baseline),
            "oracle": float(values.max(axis=1).mean()) if len(values) else 0.0,
            "picks": dict(Counter(picks).most_common()),
            "per_choice": dict(zip(names, values.mean(axis=0).round(4).tolist(), strict=True)),
        }
        if plan.generate:
            rows = list(range(len(split.test)))
            task["task_metric"] = _task_metric_check(engine, split, rows, picks, best, plan)
        results["tasks"][split.task] = task
    if plan.ropg is not None and make_engine is not None:
        results["ropg"] = _ropg(engine, splits, plan, train, test, cache, make_engine)
    (plan.out / "results.json").write_text(json.dumps(results, indent=1))
    return results


def _ropg(
    engine: Engine,
    splits: list[Split],
    plan: RspgPlan,
    train: dict[str, Outcomes],
    test: dict[str, Outcomes],
    cache: OutcomeCache,
    make_engine: Callable[[Path], Engine],
) -> dict[str, Any]:
    assert plan.ropg is not None
    triples = [
        t for s in splits for t in ropg_triples(engine, s.train, plan.choices, train[s.task])
    ]
    folder = fine_tune(plan.embed_base, triples, plan.out / "ropg", plan.ropg)
    tuned = make_engine(folder)
    dense = [c for c in plan.choices if c.retriever == "dense"]
    names = [c.name for c in plan.choices]
    found: dict[str, Any] = {"triples": len(triples), "folder": str(folder), "tasks": {}}
    for split in splits:
        values = test[split.task].values
        best = plan.choices[int(np.argmax(train[split.task].values.mean(axis=0)))]
        tuned_values = outcomes(tuned, split.test, dense, cache, plan.progress).values
        rows = {}
        for col, choice in enumerate(dense):
            base = values[:, names.index(choice.name)]
            rows[choice.name] = {
                "vs_base_dense": compared(tuned_values[:, col], base),
                "vs_best_single": compared(tuned_values[:, col], values[:, names.index(best.name)]),
            }
        found["tasks"][split.task] = {"best_single": best.name, "by_k": rows}
    return found


def table(results: dict[str, Any]) -> str:
    """The results as markdown tables."""

    def cell(c: dict[str, Any]) -> str:
        return f"{c['delta']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}] p={c['p_value']:.3f}"

    lines = [
        "| task | train / test requests | best single (train) | its mean | rspg mean | "
        "rspg − best [95% CI], p | without task features − best, p | oracle mean | "
        "rspg picks |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, task in results["tasks"].items():
        c = task["rspg_vs_best"]
        plain = task.get("without_task_features_vs_best")
        picks = ", ".join(f"{k} {v}" for k, v in task["picks"].items())
        lines.append(
            f"| {name} | {task['train']} / {task['test']} | {task['best_single']} | "
            f"{c['baseline']:.4f} | {c['system']:.4f} | {cell(c)} | "
            f"{cell(plain) if plain else '—'} | {task['oracle']:.4f} | {picks} |"
        )
    checks = [(n, t["task_metric"]) for n, t in results["tasks"].items() if "task_metric" in t]
    if checks:
        lines += ["", "| task | metric | requests generated (picks differ) | rspg − best |"]
        lines.append("| --- | --- | --- | --- |")
        for name, check in checks:
            delta = cell(check) if check["generated"] else "—"
            lines.append(f"| {name} | {check['metric']} | {check['generated']} | {delta} |")
    if "ropg" in results:
        ropg = results["ropg"]
        lines += ["", f"ROPG: {ropg['triples']} training triples", ""]
        lines.append("| task | dense k | ropg − base dense [95% CI], p | ropg − best single, p |")
        lines.append("| --- | --- | --- | --- |")
        for name, task in ropg["tasks"].items():
            for k, row in task["by_k"].items():
                lines.append(
                    f"| {name} | {k} | {cell(row['vs_base_dense'])} | "
                    f"{cell(row['vs_best_single'])} ({task['best_single']}) |"
                )
    return "\n".join(lines)
