"""Scoring existing prediction files the way LaMP's evaluator does.

Both files are in LaMP's format, ``{"task": ..., "golds": [{"id": ..., "output": ...}]}``.
As in the official evaluator the sets of ids must be equal; unlike it, the error says
which ids are missing or extra instead of failing on a bare assertion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgen.evaluate.benchmarks.lamp import LAMP_TASKS
from pgen.evaluate.benchmarks.tasks import Kind, TaskSpec, metrics_for, read_json
from pgen.evaluate.metrics import lamp2_labels, lamp_rouge_bootstrap_mid
from pgen.evaluate.metrics.labels import LAMP1_LABELS, RATING_LABELS
from pgen.evaluate.stats import bootstrap


def read_outputs(path: Path, task: str) -> dict[str, str]:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("golds"), list):
        raise ValueError(f'{path}: expected {{"task": ..., "golds": [{{"id", "output"}}, ...]}}')
    if data.get("task") not in (None, task):
        raise ValueError(f"{path}: holds task {data.get('task')!r}, not {task!r}")
    outputs: dict[str, str] = {}
    for number, row in enumerate(data["golds"]):
        if not isinstance(row, dict) or "id" not in row or "output" not in row:
            raise ValueError(f"{path}: entry {number} needs 'id' and 'output'")
        key = str(row["id"])
        if key in outputs:
            raise ValueError(f"{path}: id {key!r} appears twice")
        outputs[key] = str(row["output"])
    return outputs


def task_spec(task: str, golds: list[str]) -> TaskSpec:
    kind: Kind = "generation"
    labels: tuple[str, ...] = ()
    if task == "LaMP_1":
        kind, labels = "classification", LAMP1_LABELS
    elif task == "LaMP_2":
        kind, labels = "classification", lamp2_labels(golds)
    elif task in ("LaMP_3", "amazon_rating"):
        kind, labels = "rating", RATING_LABELS
    return TaskSpec(task, kind, labels)


def _ids(ids: set[str]) -> str:
    shown = sorted(ids)[:10]
    return ", ".join(shown) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def score_files(
    task: str, golds_path: Path, preds_path: Path, bertscore: bool = False
) -> dict[str, Any]:
    golds = read_outputs(golds_path, task)
    preds = read_outputs(preds_path, task)
    missing, extra = set(golds) - set(preds), set(preds) - set(golds)
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"{len(missing)} gold ids have no prediction ({_ids(missing)})")
        if extra:
            problems.append(f"{len(extra)} predictions have no gold ({_ids(extra)})")
        raise ValueError(f"{preds_path}: ids do not match {golds_path}: " + "; ".join(problems))
    ids = sorted(golds)
    gold_list = [golds[i] for i in ids]
    pred_list = [preds[i] for i in ids]
    spec = task_spec(task, gold_list)
    metrics = metrics_for(spec)
    if bertscore:
        from pgen.evaluate.metrics.bertscore import BertScorer

        metrics.append(BertScorer().metric())
    results: dict[str, Any] = {
        "task": task,
        "examples": len(ids),
        "metrics": {
            m.name: bootstrap(m, m.statistics(pred_list, gold_list)).as_dict() for m in metrics
        },
        "definitions": {m.name: m.definition for m in metrics},
    }
    if spec.kind == "generation" and task in LAMP_TASKS:
        results["lamp_bootstrap_mid"] = lamp_rouge_bootstrap_mid(pred_list, gold_list)
    return results
