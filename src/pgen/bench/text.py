"""``pgen bench text``: every strategy × retriever × k on one task, resumable.

For each question its profile becomes the documents of a user of its own, in a store in
the run folder (one store per data hash); the Engine then generates (greedy, in batches)
for every setting, appending each answer to the resume cache (``pgen.bench.text_plan``). At
the end the predictions are written in the task's own format, each file with the run's
``record`` (``pgen.evaluate.run_record``), and scored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pgen.bench.text_adapter_runs import ADAPTER_STRATEGIES, train_adapters
from pgen.bench.text_plan import (
    CACHE_FILE,
    BenchPlan,
    Prediction,
    Setting,
    cache_key,
    read_cache,
    settings_grid,
)
from pgen.context.records import User
from pgen.engine import Engine
from pgen.evaluate.answers import (
    CHOICE_CALIBRATED,
    CHOICE_MODES,
    calibrated_choices,
    read_answers,
)
from pgen.evaluate.benchmarks import Example, TaskData, excluded_counts
from pgen.evaluate.run_record import run_record
from pgen.models.base import ChoiceModel
from pgen.personalize import TextRequest

__all__ = ["CACHE_FILE", "BenchPlan", "Setting", "bench_text", "settings_grid"]


def fill_store(engine: Engine, examples: list[Example]) -> None:
    """Each question's profile as the documents of that question's own user."""
    records: list[Any] = []
    for example in examples:
        records.append(User(user_id=example.user_id))
        records += example.profile
    engine.store.add(records)


def _request(example: Example, setting: Setting) -> TextRequest:
    if setting.retriever is None:
        return TextRequest(example.user_id, example.instruction, strategy=setting.strategy)
    return TextRequest(
        example.user_id,
        example.instruction,
        strategy=setting.strategy,
        k=setting.k or 1,
        retriever=setting.retriever,
        query=example.query,
    )


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def _chunks(items: list[Example], size: int) -> Iterator[list[Example]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


Answer = tuple[str, list[str], list[float] | None]  # text, provenance, label scores


def answer(
    engine: Engine, requests: list[TextRequest], data: TaskData, plan: BenchPlan
) -> list[Answer]:
    """(answer, provenance, label scores) per request: generated, or in a choice mode the
    label the model finds most likely as its reply to the same prompt, with every label's
    log-probability (calibration works from those)."""
    if plan.answers not in CHOICE_MODES:
        outputs = engine.generate_many(
            requests, generation=plan.generation(), save=False, batch_size=plan.batch_size
        )
        return [(output.text, output.provenance.documents, None) for output in outputs]
    model = engine.text_model
    if not isinstance(model, ChoiceModel):
        raise ValueError(
            f"--answers {plan.answers} needs a model that scores replies (a local transformers "
            f"model); {model.name} cannot"
        )
    prepared = engine.prepare(requests, plan.generation())
    labels = list(data.spec.labels)
    chats = [p.chat or [] for p in prepared]
    # Each row scored through its user's adapter (lora, lora+rag, dpo), else the base.
    scores = model.choice_logprobs(chats, labels, [p.adapter for p in prepared])
    return [
        (labels[int(np.argmax(row))], p.provenance.documents, [float(x) for x in row])
        for row, p in zip(scores, prepared, strict=True)
    ]


def generate_all(
    engine: Engine, data: TaskData, plan: BenchPlan, run_dir: Path
) -> dict[str, dict[str, Prediction]]:
    """setting name -> example id -> prediction, generating only what the cache lacks."""
    cache_path = run_dir / CACHE_FILE
    cached = read_cache(cache_path)
    keys = {s.name: cache_key(data, plan, s) for s in plan.settings}

    def missing(setting: Setting, example: Example) -> bool:
        found = cached.get(keys[setting.name], {}).get(example.id)
        # A choice made before label scores were cached cannot be calibrated: redo it.
        return found is None or (plan.answers in CHOICE_MODES and found.label_logprobs is None)

    todo = {s.name: [e for e in data.examples if missing(s, e)] for s in plan.settings}
    total = sum(len(v) for v in todo.values())
    if total:
        fill_store(engine, data.examples)
        train_adapters(engine, data, plan, todo)
    bar = tqdm(total=total, desc="generating", unit="pred", disable=not plan.progress)
    with cache_path.open("a", encoding="utf-8") as cache:
        if cache_path.stat().st_size and not _ends_with_newline(cache_path):
            cache.write("\n")  # end a line torn by a kill, so the next row stands alone
        for setting in plan.settings:
            key = keys[setting.name]
            bar.set_postfix_str(setting.name)
            for chunk in _chunks(todo[setting.name], plan.batch_size):
                model_name = engine.text_model.name
                started = time.perf_counter()
                outputs = answer(engine, [_request(e, setting) for e in chunk], data, plan)
                seconds = (time.perf_counter() - started) / len(chunk)
                for example, (text, provenance, scores) in zip(chunk, outputs, strict=True):
                    prediction = Prediction(
                        example.id, text, provenance, seconds, model_name, scores
                    )
                    cached.setdefault(key, {})[example.id] = prediction
                    row = {"key": key, "setting": setting.name, **asdict(prediction)}
                    cache.write(json.dumps(row, ensure_ascii=False) + "\n")
                cache.flush()  # a kill loses at most the batch in flight
                bar.update(len(chunk))
    bar.close()
    return {s.name: cached.get(keys[s.name], {}) for s in plan.settings}


def scored_answers(rows: list[Prediction], data: TaskData, mode: str) -> list[str]:
    """The answers that get scored, read from one setting's predictions in ``mode``."""
    if mode == CHOICE_CALIBRATED:
        scores = np.array([row.label_logprobs for row in rows], dtype=np.float64)
        return calibrated_choices(scores, data.spec.labels)
    return read_answers([row.output for row in rows], data.spec.labels, mode)


def run_info(data: TaskData, plan: BenchPlan, model_name: str) -> dict[str, Any]:
    """The run's record (``pgen.evaluate.run_record``): task, data and its sha256,
    settings, model, package versions, machine and threads."""
    return run_record(
        task=data.spec.name,
        data=data.sources,
        data_sha256=data.data_hash,
        settings={
            "family": data.spec.family,
            "setting": data.setting,
            "max_new_tokens": plan.max_new_tokens,
            "prompt_tokens": plan.prompt_tokens,
            "batch_size": plan.batch_size,
            "answers": plan.answers,
            "decoding": asdict(plan.generation()),
            "settings_run": [s.name for s in plan.settings],
            **(
                {
                    "adapter_caps": asdict(plan.adapter_caps),
                    "adapter_training": {
                        "runner": plan.training.runner,
                        "batch_users": plan.training.batch_users,
                    },
                }
                if any(s.strategy in ADAPTER_STRATEGIES for s in plan.settings)
                else {}
            ),
            **plan.extra,
        },
        model={"spec": plan.model, "loaded": model_name, "embed_model": plan.embed_model},
    )


def output_names(answers: str) -> dict[str, str]:
    """File names of a run's results. Raw answers (LaMP's rule) get the plain names; any
    other reading of the same outputs (``--answers first-label``, ``choice``...) is written
    beside them with the mode in the name, so re-scoring into the same ``--out`` never
    overwrites the raw predictions."""
    tag = "" if answers == "raw" else f".{answers}"
    return {
        "predictions": f"{{setting}}{tag}.json",
        "metrics": f"metrics{tag}.json",
        "report": f"report{tag}.md",
        "plot": f"report{tag}.png",
    }


def write_predictions(
    data: TaskData,
    outputs: dict[str, list[str]],
    run_dir: Path,
    record: dict[str, Any],
    per_setting: dict[str, dict[str, Any]],
) -> None:
    """Golds and one predictions file per setting (the answers scored), in LaMP's format
    plus the run's ``record`` and the ``setting`` (LaMP's evaluator reads only ``task`` and
    ``golds``)."""
    folder = run_dir / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    golds = {**data.golds_file(), "record": record}
    (run_dir / "golds.json").write_text(json.dumps(golds, indent=1, ensure_ascii=False))
    pattern = output_names(record["settings"]["answers"])["predictions"]
    for name, answers in outputs.items():
        rows = [{"id": e.id, "output": a} for e, a in zip(data.examples, answers, strict=True)]
        payload = {
            "task": data.spec.name,
            "golds": rows,
            "record": record,
            "setting": per_setting[name],
        }
        path = folder / pattern.format(setting=name)
        path.write_text(json.dumps(payload, indent=1, ensure_ascii=False))


def _setting_info(
    data: TaskData, plan: BenchPlan, setting: Setting, rows: list[Prediction]
) -> dict[str, Any]:
    count = max(len(rows), 1)
    return {
        **asdict(setting),
        "cache_key": cache_key(data, plan, setting),
        "docs_per_prompt": sum(len(p.provenance) for p in rows) / count,
        "seconds_per_prediction": sum(p.seconds for p in rows) / count,
        # How often the raw answer is exactly a label (LaMP scores anything else wrong).
        "in_label_set": (
            sum(p.output.strip() in data.spec.labels for p in rows) / count
            if data.spec.labels
            else None
        ),
        "first_output": rows[0].output if rows else "",
    }


def bench_text(
    engine: Engine,
    data: TaskData,
    plan: BenchPlan,
    run_dir: Path,
    metrics: list[Any] | None = None,
) -> dict[str, Any]:
    """Generate (resuming), write predictions, score, and write metrics.json + report."""
    from pgen.evaluate.benchmarks import metrics_for
    from pgen.evaluate.report import markdown, plot
    from pgen.evaluate.scoring import score

    if plan.answers in CHOICE_MODES and not data.spec.labels:
        raise ValueError(
            f"--answers {plan.answers} needs a task with a label set; {data.spec.name} has none"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    predictions = generate_all(engine, data, plan, run_dir)
    rows = {name: [by_id[e.id] for e in data.examples] for name, by_id in predictions.items()}
    outputs = {name: scored_answers(r, data, plan.answers) for name, r in rows.items()}
    names = {p.model for by_id in predictions.values() for p in by_id.values() if p.model}
    record = run_info(data, plan, ", ".join(sorted(names)) or plan.model)
    settings_info = {s.name: _setting_info(data, plan, s, rows[s.name]) for s in plan.settings}
    write_predictions(data, outputs, run_dir, record, settings_info)
    chosen = metrics if metrics is not None else metrics_for(data.spec)
    golds = [e.gold for e in data.examples]
    results = {
        "record": record,
        "meta": {
            "examples": [e.id for e in data.examples],
            "first_example": {
                "id": data.examples[0].id,
                "instruction": data.examples[0].instruction,
                "gold": data.examples[0].gold,
            },
            "skipped": dict(data.skipped),
            # Profile documents taken out of the questions run (variant duplicates, the
            # leakage guard's removals), by reason.
            "excluded": dict(excluded_counts(data.examples)),
            "settings": settings_info,
        },
        "scores": score(chosen, golds, outputs, lamp_rouge=data.spec.kind == "generation"),
    }
    names_out = output_names(plan.answers)
    (run_dir / names_out["metrics"]).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (run_dir / names_out["report"]).write_text(markdown(results))
    plot(results, run_dir / names_out["plot"])
    return results
