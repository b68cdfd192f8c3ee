"""``pgen bench text``: every strategy × retriever × k on one task, resumable.

For each question its profile becomes the documents of a user of its own, in a store in
the run folder; the Engine then generates (greedy, in batches) for every setting. Each
finished prediction is appended to ``cache.jsonl`` at once, keyed by everything that
decides it (task, data hash, model, strategy, retriever, k, decoding, prompt budget, and
a hash of the strategy's prompt-building code), so an interrupted run picks up where it
stopped and a changed setting never reuses a stale answer. At the end the predictions are
written in the task's own format and scored.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pgen.context.models import User
from pgen.engine import Engine
from pgen.evaluate.answers import (
    CHOICE,
    CHOICE_CALIBRATED,
    CHOICE_MODES,
    calibrated_choices,
    read_answers,
)
from pgen.evaluate.benchmarks import Example, TaskData
from pgen.models.base import ChoiceModel, GenerationConfig
from pgen.personalize import Request

CACHE_FILE = "cache.jsonl"
STORE_FILE = "store.sqlite"


@dataclass(frozen=True)
class Setting:
    """One way of personalizing: a strategy and, for retrieval, a retriever and k."""

    strategy: str
    retriever: str | None = None
    k: int | None = None

    @property
    def name(self) -> str:
        if self.retriever is None:
            return self.strategy
        return f"{self.strategy}-{self.retriever}-k{self.k}"


def settings_grid(strategies: list[str], retrievers: list[str], ks: list[int]) -> list[Setting]:
    """``none`` and ``profile`` once each; ``rag`` for every retriever and k."""
    grid: list[Setting] = []
    for strategy in dict.fromkeys(strategies):
        if strategy == "rag":
            grid += [Setting("rag", r, k) for r in dict.fromkeys(retrievers) for k in ks]
        else:
            grid.append(Setting(strategy))
    return grid


@dataclass
class BenchPlan:
    settings: list[Setting]
    model: str  # the model spec, part of every cache key
    max_new_tokens: int
    prompt_tokens: int = 1024
    batch_size: int = 8
    progress: bool = True
    answers: str = "raw"  # "first-label": read label answers out of chatty text (not LaMP's rule)
    extra: dict[str, Any] = field(default_factory=dict)  # recorded, not keyed

    def generation(self) -> GenerationConfig:
        return GenerationConfig(max_new_tokens=self.max_new_tokens)  # greedy, seed 0


@dataclass
class Prediction:
    id: str
    output: str
    provenance: list[str]
    seconds: float
    model: str = ""  # the loaded model's own name
    label_logprobs: list[float] | None = None  # choice modes: each label's score, in order


def strategy_fingerprint(strategy: str) -> str:
    """A hash of the code that builds this strategy's prompts (its module, the shared base
    and prompt packing): any edit there may change answers, so cached ones are not reused."""
    from pgen.personalize import TEXT_STRATEGIES

    modules = {type(TEXT_STRATEGIES[strategy]).__module__}
    modules |= {"pgen.personalize.base", "pgen.personalize.prompts"}
    digest = hashlib.sha256()
    for name in sorted(modules):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()[:16]


def cache_key(data: TaskData, plan: BenchPlan, setting: Setting) -> str:
    decided_by = {
        "prompts": strategy_fingerprint(setting.strategy),
        "task": data.spec.name,
        "data": data.data_hash,
        "model": plan.model,
        "setting": asdict(setting),
        "generation": asdict(plan.generation()),
        "prompt_tokens": plan.prompt_tokens,
    }
    if plan.answers in CHOICE_MODES:  # chosen, not generated: one key for the label scores
        decided_by["answers"] = CHOICE
    return hashlib.sha256(json.dumps(decided_by, sort_keys=True).encode()).hexdigest()[:24]


def read_cache(path: Path) -> dict[str, dict[str, Prediction]]:
    """key -> id -> prediction. A torn last line (killed mid-write) is ignored."""
    found: dict[str, dict[str, Prediction]] = {}
    if not path.is_file():
        return found
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
                prediction = Prediction(
                    row["id"],
                    row["output"],
                    row["provenance"],
                    row.get("seconds", 0.0),
                    row.get("model", ""),
                    row.get("label_logprobs"),
                )
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            found.setdefault(row["key"], {})[prediction.id] = prediction
    return found


def fill_store(engine: Engine, examples: list[Example]) -> None:
    """Each question's profile as the documents of that question's own user."""
    records: list[Any] = []
    for example in examples:
        records.append(User(user_id=example.user_id))
        records += example.profile
    engine.store.add(records)


def _request(example: Example, setting: Setting) -> Request:
    if setting.retriever is None:
        return Request(example.user_id, example.instruction, strategy=setting.strategy)
    return Request(
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
    engine: Engine, requests: list[Request], data: TaskData, plan: BenchPlan
) -> list[Answer]:
    """(answer, provenance, label scores) per request: generated, or in a choice mode the
    label the model finds most likely as its reply to the same prompt, with every label's
    log-probability (calibration works from those)."""
    if plan.answers not in CHOICE_MODES:
        outputs = engine.generate_many(
            requests, generation=plan.generation(), save=False, batch_size=plan.batch_size
        )
        return [(output.text, output.provenance, None) for output in outputs]
    model = engine.text_model
    if not isinstance(model, ChoiceModel):
        raise ValueError(
            f"--answers {plan.answers} needs a model that scores replies (a local transformers "
            f"model); {model.name} cannot"
        )
    prepared = engine.prepare(requests, plan.generation())
    labels = list(data.spec.labels)
    scores = model.choice_logprobs([p.chat for p in prepared], labels)
    return [
        (labels[int(np.argmax(row))], p.provenance, [float(x) for x in row])
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


def write_predictions(data: TaskData, outputs: dict[str, list[str]], run_dir: Path) -> None:
    """Golds and one predictions file per setting (the answers scored), in LaMP's format."""
    folder = run_dir / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    (run_dir / "golds.json").write_text(json.dumps(data.golds_file(), indent=1, ensure_ascii=False))
    for name, answers in outputs.items():
        rows = [{"id": e.id, "output": a} for e, a in zip(data.examples, answers, strict=True)]
        payload = {"task": data.spec.name, "golds": rows}
        (folder / f"{name}.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False))


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
    from pgen.evaluate.results import environment, score

    if plan.answers in CHOICE_MODES and not data.spec.labels:
        raise ValueError(
            f"--answers {plan.answers} needs a task with a label set; {data.spec.name} has none"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    predictions = generate_all(engine, data, plan, run_dir)
    outputs = {
        name: scored_answers([by_id[e.id] for e in data.examples], data, plan.answers)
        for name, by_id in predictions.items()
    }
    write_predictions(data, outputs, run_dir)
    chosen = metrics if metrics is not None else metrics_for(data.spec)
    golds = [e.gold for e in data.examples]
    names = {p.model for by_id in predictions.values() for p in by_id.values() if p.model}
    model_name = ", ".join(sorted(names)) or plan.model
    settings_info = {}
    for setting in plan.settings:
        by_id = predictions[setting.name]
        rows = [by_id[e.id] for e in data.examples]
        settings_info[setting.name] = {
            **asdict(setting),
            "cache_key": cache_key(data, plan, setting),
            "docs_per_prompt": sum(len(p.provenance) for p in rows) / max(len(rows), 1),
            "seconds_per_prediction": sum(p.seconds for p in rows) / max(len(rows), 1),
            # How often the raw answer is exactly a label (LaMP scores anything else wrong).
            "in_label_set": (
                sum(p.output.strip() in data.spec.labels for p in rows) / max(len(rows), 1)
                if data.spec.labels
                else None
            ),
            "first_output": rows[0].output if rows else "",
        }
    results = {
        "meta": {
            "task": data.spec.name,
            "family": data.spec.family,
            "setting": data.setting,
            "data": [str(p) for p in data.sources],
            "data_hash": data.data_hash,
            "model": model_name,
            "model_spec": plan.model,
            "max_new_tokens": plan.max_new_tokens,
            "prompt_tokens": plan.prompt_tokens,
            "batch_size": plan.batch_size,
            "answers": plan.answers,
            "decoding": asdict(plan.generation()),
            "examples": [e.id for e in data.examples],
            "first_example": {
                "id": data.examples[0].id,
                "instruction": data.examples[0].instruction,
                "gold": data.examples[0].gold,
            },
            "skipped": dict(data.skipped),
            "settings": settings_info,
            **plan.extra,
            **environment(),
        },
        "scores": score(chosen, golds, outputs),
    }
    (run_dir / "metrics.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (run_dir / "report.md").write_text(markdown(results))
    plot(results, run_dir / "report.png")
    return results
