"""Per-user adapters of ``bench text``: ``lora``/``lora+rag`` and ``dpo``, profile only.

A question-user has no feedback in LaMP or Amazon, so ``dpo`` learns from preference
pairs built from that user's own profile: for each of the (capped) profile documents, put
through the task's example template, chosen = what the user really wrote (the category,
title or review text), rejected = the base model's own greedy answer to the same prompt
(generated once, cached in the run's ``cache.jsonl``; pairs where the two agree are
dropped). The pairs are written as the user's feedback in the run's scratch store and
trained as ``pgen train --method dpo`` trains them, starting from the user's ``lora``: one
code path with the service, on the plan's runner (``pgen.bench.training``: inline or
Ray). CPU cost decides the caps (``AdapterCaps``), which are recorded and are part of
every adapter setting's cache key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from pgen.context.artifacts import read_meta
from pgen.context.records import Feedback
from pgen.evaluate.benchmarks import Example, TaskData

if TYPE_CHECKING:
    from pgen.bench.text_plan import BenchPlan
    from pgen.engine import Engine
    from pgen.training.dpo import DpoSettings
    from pgen.training.examples import Example as TrainExample
    from pgen.training.text_lora import LoraSettings


def _adapter_kind(strategy: object) -> str | None:
    """The adapter kind a strategy applies (None: none); read with defaults, so a strategy
    type without the attribute counts as adapter-free."""
    kind = getattr(strategy, "adapter_kind", None) or getattr(strategy, "kind", None)
    return kind if isinstance(kind, str) else None


def adapter_strategies(kind: str | None = None) -> tuple[str, ...]:
    """The registered text strategies that apply a per-user adapter (of ``kind``)."""
    import pgen.personalize  # noqa: F401  (registers the strategies)
    from pgen.personalize.registry import get_strategy, strategy_names

    kinds = [(name, _adapter_kind(get_strategy("text", name))) for name in strategy_names("text")]
    return tuple(name for name, k in kinds if k is not None and kind in (None, k))


LORA_STRATEGIES = adapter_strategies("lora")  # trained as ``pgen train --method lora``
ADAPTER_STRATEGIES = adapter_strategies()
FEEDBACK_PREFIX = "bench-dpo-"  # the scratch store's pairs, one per profile document


@dataclass(frozen=True)
class AdapterCaps:
    """What bounds per-user training on a shared CPU (keyed and recorded)."""

    profile_items: int = 8  # the user's most recent profile documents trained on
    max_length: int = 256  # prompt + output tokens per example
    epochs: int = 1
    learning_rate: float = 2e-4
    batch_size: int = 4
    dpo_beta: float = 0.1

    def lora(self, task: str | None, progress: bool) -> LoraSettings:
        from pgen.training.text_lora import LoraSettings

        return LoraSettings(
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_length=self.max_length,
            recent=self.profile_items,
            task=task,
            progress=progress,
        )

    def dpo(self, lora: LoraSettings) -> DpoSettings:
        from pgen.training.dpo import DpoSettings

        # Every pair trains (no holdout: the bench's test is the question), one pair is
        # enough to try, and the bench measures by its own metrics, not pair accuracy.
        return DpoSettings(
            beta=self.dpo_beta,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_length=self.max_length,
            holdout=0.0,
            min_pairs=1,
            lora=lora,
            progress=lora.progress,
            measure=False,
        )


def _template_task(data: TaskData) -> str | None:
    from pgen.training.examples import TEMPLATES

    return data.spec.name if data.spec.name in TEMPLATES else None


def train_adapters(
    engine: Engine, data: TaskData, plan: BenchPlan, todo: dict[str, list[Example]]
) -> None:
    """Train what the plan's adapter settings lack, question-user by question-user, on
    that user's profile only, on the plan's runner; seconds per user (and pairs, for
    dpo) into the record."""
    from pgen.training.registry import TrainRequest
    from pgen.training.text_lora import current_lora

    needed = [s for s in plan.settings if s.strategy in ADAPTER_STRATEGIES and todo[s.name]]
    if not needed:
        return
    caps = plan.adapter_caps
    lora = caps.lora(_template_task(data), plan.progress)
    users = list(dict.fromkeys(e.user_id for s in needed for e in todo[s.name]))
    # dpo starts from the user's lora, so it needs one too. Only the missing or stale
    # ones (other caps make another adapter) are trained.
    model = engine.text_model
    missing = [u for u in users if current_lora(engine.store, u, model, lora) is None]
    requests = [TrainRequest(u, "lora", settings=lora) for u in missing]
    done = plan.training.train(engine.store, model, requests)
    seconds = {result.user_id: result.seconds for result in done}
    if seconds:
        plan.extra["lora_training_seconds"] = {u: round(s, 2) for u, s in seconds.items()}
        plan.extra["lora_training_seconds_per_user"] = round(
            sum(seconds.values()) / len(seconds), 2
        )
        plan.extra["lora_users_trained"] = len(seconds)
    dpo = {e.id: e for s in needed if s.strategy == "dpo" for e in todo[s.name]}
    if dpo:
        _train_dpo(engine, data, plan, list(dpo.values()), lora, set(seconds))


def profile_pairs(
    engine: Engine, data: TaskData, plan: BenchPlan, example: Example, lora: LoraSettings
) -> list[tuple[TrainExample, str]]:
    """(the profile example, the base model's greedy answer to it), where they differ."""
    from pgen.training.text_lora import recent_examples

    chosen = recent_examples(engine.store, example.user_id, lora.task, lora.recent)
    rejected = base_answers(engine, data, plan, example.user_id, chosen)
    pairs = [(c, r) for c, r in zip(chosen, rejected, strict=True) if c.output.strip() != r.strip()]
    check_no_leak(example, pairs, generation=data.spec.kind == "generation")
    return pairs


def check_no_leak(
    example: Example, pairs: list[tuple[TrainExample, str]], generation: bool
) -> None:
    """The question never teaches its own answer: every pair comes from the question's own
    profile, none asks the question itself, and on generation tasks none has the gold as
    its chosen reply (label tasks share labels with the profile legitimately)."""
    profile = {d.doc_id for d in example.profile}
    for pair, _ in pairs:
        if pair.user_id != example.user_id or pair.doc_id not in profile:
            raise RuntimeError(f"dpo pair from {pair.doc_id!r} is not in {example.id}'s profile")
        if pair.instruction.strip() == example.instruction.strip() or (
            generation and pair.output.strip() == example.gold.strip()
        ):
            raise RuntimeError(f"dpo pair from {pair.doc_id!r} holds question {example.id}")


def base_answers(
    engine: Engine, data: TaskData, plan: BenchPlan, user_id: str, examples: list[TrainExample]
) -> list[str]:
    """The base model's greedy answers to the profile prompts, cached beside the bench's
    predictions (keyed by model, decoding and the prompt)."""
    from pgen.bench.text_plan import CACHE_FILE, Prediction, read_cache
    from pgen.personalize import TextRequest

    path = plan.run_dir / CACHE_FILE if plan.run_dir else None
    key = rejected_key(data, plan)
    cached = read_cache(path).get(key, {}) if path else {}
    ids = [_prompt_id(user_id, e.instruction) for e in examples]
    missing = [(i, e) for i, e in zip(ids, examples, strict=True) if i not in cached]
    if missing:
        requests = [TextRequest(user_id, e.instruction, strategy="none") for _, e in missing]
        outputs = engine.generate_many(
            requests, generation=plan.generation(), save=False, batch_size=plan.batch_size
        )
        rows = []
        for (prompt_id, _), output in zip(missing, outputs, strict=True):
            cached[prompt_id] = Prediction(prompt_id, output.text, [], 0.0, engine.text_model.name)
            rows.append({"key": key, "setting": "dpo-rejected", **asdict(cached[prompt_id])})
        if path:
            with path.open("a", encoding="utf-8") as cache:
                cache.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return [cached[i].output for i in ids]


def rejected_key(data: TaskData, plan: BenchPlan) -> str:
    from pgen.bench.text_plan import strategy_fingerprint

    decided_by = {
        "rejected": strategy_fingerprint("none"),
        "model": plan.model,
        "generation": asdict(plan.generation()),
        "prompt_tokens": plan.prompt_tokens,
        "task": data.spec.name,
    }
    return hashlib.sha256(json.dumps(decided_by, sort_keys=True).encode()).hexdigest()[:24]


def _prompt_id(user_id: str, instruction: str) -> str:
    return f"{user_id}/{hashlib.sha256(instruction.encode()).hexdigest()[:16]}"


def _train_dpo(
    engine: Engine,
    data: TaskData,
    plan: BenchPlan,
    examples: list[Example],
    lora: LoraSettings,
    lora_retrained: set[str],
) -> None:
    from pgen.training.registry import TrainRequest

    settings = plan.adapter_caps.dpo(replace(lora, progress=False))
    pair_counts: dict[str, int] = {}
    requests = []
    for example in dict((e.user_id, e) for e in examples).values():
        user = example.user_id
        pairs = profile_pairs(engine, data, plan, example, lora)
        pair_counts[user] = len(pairs)
        if not pairs:
            continue  # the base already answers like the user: nothing to prefer
        _store_pairs(engine, user, pairs)
        if user in lora_retrained or not _current_dpo(engine, user, settings):
            requests.append(TrainRequest(user, "dpo", settings=settings))
    done = plan.training.train(engine.store, engine.text_model, requests)
    seconds = {result.user_id: result.seconds for result in done}
    plan.extra["dpo_pairs"] = pair_counts
    if seconds:
        plan.extra["dpo_training_seconds"] = {u: round(s, 2) for u, s in seconds.items()}
        plan.extra["dpo_training_seconds_per_user"] = round(sum(seconds.values()) / len(seconds), 2)
        plan.extra["dpo_users_trained"] = len(seconds)


def _current_dpo(engine: Engine, user: str, settings: DpoSettings) -> bool:
    """The user's dpo adapter was trained with these settings on their pairs as they
    stand, on this base model: nothing to retrain."""
    from pgen.context.artifacts import ADAPTER_NAME, pairs_fingerprint
    from pgen.usermodel.preferences import feedback_pairs

    folder = engine.store.artifacts(user).get(("dpo", ADAPTER_NAME))
    meta = read_meta(folder) if folder is not None else None
    current = pairs_fingerprint(feedback_pairs(engine.store, user))
    return (
        meta is not None
        and meta.settings == settings.as_dict()
        and meta.stale_reason(engine.text_model.name, current) is None
    )


def _store_pairs(engine: Engine, user: str, pairs: list[tuple[TrainExample, str]]) -> None:
    """The pairs as the user's feedback, one id per profile document. Feedback of other
    caps left in this store would be trained on too: refused, with the way out."""
    ids = {f"{FEEDBACK_PREFIX}{p.doc_id}" for p, _ in pairs}
    stale = [f.feedback_id for f in engine.store.feedback(user) if f.feedback_id not in ids]
    if stale:
        raise ValueError(
            f"user {user!r} in this run's store has dpo pairs from other caps or data "
            f"({stale[0]}, ...): run into a new --out folder"
        )
    engine.store.add(
        Feedback(
            user_id=user,
            feedback_id=f"{FEEDBACK_PREFIX}{p.doc_id}",
            prompt=p.instruction,
            chosen=p.output,
            rejected=rejected,
        )
        for p, rejected in pairs
    )


def caps_record(caps: AdapterCaps) -> dict[str, Any]:
    return asdict(caps)
