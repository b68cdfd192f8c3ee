"""Scoring existing prediction files the way LaMP's evaluator does.

Both files are in LaMP's format, ``{"task": ..., "golds": [{"id": ..., "output": ...}]}``
(other keys, such as the ``meta`` that ``pgen bench text`` writes, are ignored, as LaMP's
evaluator ignores them). As in the official evaluator the sets of ids must be equal, and
an id is its JSON value: ``1`` and ``"1"`` are different ids. Unlike it, the error says
which ids are missing, extra or of another type instead of failing on a bare assertion.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgen.evaluate.benchmarks.tasks import Kind, TaskSpec, metrics_for, read_json
from pgen.evaluate.metrics import lamp2_labels, lamp_rouge_bootstrap_mid
from pgen.evaluate.metrics.labels import LAMP1_LABELS, RATING_LABELS
from pgen.evaluate.metrics.overlap import LAMP_ROUGE_DEFINITION
from pgen.evaluate.stats import bootstrap

if TYPE_CHECKING:
    from pgen.evaluate.metrics.bertscore import BertScorer


def read_outputs(path: Path, task: str) -> dict[str, tuple[Any, str]]:
    """str(id) -> (the id as the file holds it, output)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("golds"), list):
        raise ValueError(f'{path}: expected {{"task": ..., "golds": [{{"id", "output"}}, ...]}}')
    if data.get("task") not in (None, task):
        raise ValueError(f"{path}: holds task {data.get('task')!r}, not {task!r}")
    outputs: dict[str, tuple[Any, str]] = {}
    for number, row in enumerate(data["golds"]):
        if not isinstance(row, dict) or "id" not in row or "output" not in row:
            raise ValueError(f"{path}: entry {number} needs 'id' and 'output'")
        key = str(row["id"])
        if key in outputs:
            raise ValueError(f"{path}: id {key!r} appears twice")
        outputs[key] = (row["id"], str(row["output"]))
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


def check_ids(
    golds: dict[str, tuple[Any, str]], preds: dict[str, tuple[Any, str]], where: str
) -> None:
    """The same ids, of the same JSON types, or a ValueError naming the ones that differ."""
    missing, extra = set(golds) - set(preds), set(preds) - set(golds)
    retyped = {
        f"{golds[i][0]!r} vs {preds[i][0]!r}"
        for i in set(golds) & set(preds)
        if type(golds[i][0]) is not type(preds[i][0])
    }
    problems = []
    if missing:
        problems.append(f"{len(missing)} gold ids have no prediction ({_ids(missing)})")
    if extra:
        problems.append(f"{len(extra)} predictions have no gold ({_ids(extra)})")
    if retyped:
        problems.append(
            f"{len(retyped)} ids differ in JSON type, gold vs prediction ({_ids(retyped)})"
        )
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))


def score_files(
    task: str, golds_path: Path, preds_path: Path, bertscore: BertScorer | None = None
) -> dict[str, Any]:
    golds = read_outputs(golds_path, task)
    preds = read_outputs(preds_path, task)
    check_ids(golds, preds, f"{preds_path}: ids do not match {golds_path}")
    ids = sorted(golds)
    gold_list = [golds[i][1] for i in ids]
    pred_list = [preds[i][1] for i in ids]
    spec = task_spec(task, gold_list)
    metrics = metrics_for(spec)
    if bertscore is not None:
        metrics.append(bertscore.metric())
    results: dict[str, Any] = {
        "task": task,
        "examples": len(ids),
        "metrics": {
            m.name: bootstrap(m, m.statistics(pred_list, gold_list)).as_dict() for m in metrics
        },
        "definitions": {m.name: m.definition for m in metrics},
        "bertscore": bertscore.settings() if bertscore is not None else None,
    }
    if spec.kind == "generation":
        results["lamp_rouge"] = lamp_rouge_bootstrap_mid(pred_list, gold_list)
        results["definitions"]["lamp_rouge"] = LAMP_ROUGE_DEFINITION
    return results
