"""DPO from a user's feedback: preference pairs, TRL's ``DPOTrainer``, held-out accuracy.

Feedback becomes pairs two ways: an explicit chosen/rejected pair, or a thumbs-up and a
thumbs-down on two of the user's outputs for the same instruction. Every output a piece
of feedback names must be one of *that user's* outputs: an unknown id, or another user's,
is an error naming the feedback, raised before anything is written.

Training starts from the user's ``lora`` adapter when they have one that applies (else a
fresh LoRA), against the adapter-free base as the reference. ``cohort`` pools other
users' pairs into training when one user has too few (held-out pairs are always the
user's own): users the caller named, or the most similar profiles (``cohorts``); the
artifact records who was pooled, how they were chosen and their similarity. Preference
accuracy is the share of held-out pairs whose implicit reward margin
``beta * ((log π(c) - log π_ref(c)) - (log π(r) - log π_ref(r)))`` is above zero,
measured before and after training.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pgen.context.artifacts import (
    ADAPTER_NAME,
    ArtifactMeta,
    pairs_fingerprint,
    read_meta,
    saved_lora_fingerprint,
)
from pgen.context.base import ContextStore
from pgen.errors import InvalidRequest
from pgen.models.base import TextModel
from pgen.models.quiet import quiet_third_party
from pgen.training.progress import OnStep, StepBar
from pgen.training.stopping import StopCheck, stop_if_asked
from pgen.training.text_lora import (
    LoraSettings,
    fresh_base,
    new_lora,
    prompt_text,
    save_adapter,
)
from pgen.usermodel.preferences import (
    Pair,
    feedback_pairs,
)


@dataclass(frozen=True)
class DpoSettings:
    beta: float = 0.1
    epochs: int = 3
    learning_rate: float = 2e-4
    batch_size: int = 4
    max_length: int = 512
    max_steps: int | None = None
    holdout: float = 0.2  # share of the user's own pairs kept for measuring
    min_pairs: int = 4  # fewer (with the cohort's) is refused: too little to learn from
    seed: int = 0
    cohort: tuple[str, ...] = ()
    # Set when the cohort was chosen by profile similarity (``cohorts.similar_users``):
    # each member's cosine to the user, in cohort order; recorded in the adapter's metadata.
    cohort_similarity: tuple[float, ...] = ()
    cohort_space: str = ""  # the embedder's model id (or "tf-idf") the similarities are in
    lora: LoraSettings = field(default_factory=LoraSettings)  # a fresh adapter's shape
    progress: bool = True
    measure: bool = True  # preference accuracy before and after (benchmarks measure their own)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["cohort"] = list(self.cohort)
        values.pop("cohort_similarity")  # provenance, kept in the metadata's extra
        values.pop("cohort_space")
        values["lora"] = self.lora.as_dict()
        values.pop("progress")
        values.pop("measure")
        return values


log = logging.getLogger("pgen.training")


def split(pairs: list[Pair], holdout: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Train and held-out pairs: the latest ones held out when all are dated, else a
    seeded random share. Fewer than five pairs: none held out."""
    count = round(len(pairs) * holdout) if len(pairs) >= 5 else 0
    if count == 0:
        return pairs, []
    ordered = (
        list(pairs) if all(p.time for p in pairs) else random.Random(seed).sample(pairs, len(pairs))
    )
    return ordered[:-count], ordered[-count:]


def completion_logps(
    model: Any, tokenizer: Any, pairs: Sequence[Pair], reference: bool, mean: bool = False
) -> Any:
    """(len(pairs), 2) summed log-probabilities of the chosen and rejected replies (with
    the end token); ``reference``: with every adapter switched off (the base model);
    ``mean``: per token instead (the ranking of a model that was never preference-tuned)."""
    import contextlib

    import torch

    rows = []
    for pair in pairs:
        prompt = tokenizer(prompt_text(tokenizer, pair.prompt), add_special_tokens=False)[
            "input_ids"
        ]
        scores = []
        for reply in (pair.chosen, pair.rejected):
            reply_ids = [
                *tokenizer(reply, add_special_tokens=False)["input_ids"],
                tokenizer.eos_token_id,
            ]
            ids = torch.tensor([prompt + reply_ids], device=next(model.parameters()).device)
            off = (
                model.disable_adapter()
                if reference and hasattr(model, "disable_adapter")
                else contextlib.nullcontext()
            )
            with torch.no_grad(), off:
                logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
            picked = torch.log_softmax(logits, -1).gather(1, ids[0, len(prompt) :, None])
            scores.append(float(picked.sum()) / (len(reply_ids) if mean else 1))
        rows.append(scores)
    return torch.tensor(rows, dtype=torch.float64)


def preference_metrics(
    model: Any, tokenizer: Any, pairs: Sequence[Pair], beta: float
) -> dict[str, float]:
    """Implicit-reward accuracy and mean margin of ``model`` against the base, and the
    base's own accuracy at ranking the pair by mean per-token log-likelihood."""
    if not pairs:
        return {}
    was_training = model.training
    model.eval()
    policy = completion_logps(model, tokenizer, pairs, reference=False)
    base = completion_logps(model, tokenizer, pairs, reference=True)
    model.train(was_training)
    margins = beta * ((policy[:, 0] - base[:, 0]) - (policy[:, 1] - base[:, 1]))
    return {
        "pairs": float(len(pairs)),
        "accuracy": float((margins > 0).double().mean()),
        "margin": float(margins.mean()),
    }


def training_pairs(
    store: ContextStore, user_id: str, settings: DpoSettings
) -> tuple[list[Pair], list[Pair], list[Pair], list[Pair]]:
    """The user's own pairs, the cohort's, the training pairs and the held-out ones; too
    few to train on is refused here, from the store alone (``Engine.check`` calls this
    before any model loads)."""
    own = feedback_pairs(store, user_id)  # every feedback checked before anything is written
    pooled = [
        p for member in settings.cohort if member != user_id for p in feedback_pairs(store, member)
    ]
    train, held_out = split(own, settings.holdout, settings.seed)
    train = train + pooled
    if len(train) < settings.min_pairs:
        raise InvalidRequest(
            f"user {user_id!r} has {len(own)} preference pairs ({len(pooled)} from the cohort): "
            f"DPO needs at least {settings.min_pairs} to train on (a pair is a chosen and a "
            "rejected reply, or a thumbs-up and a thumbs-down on one prompt); pool other "
            "users' pairs with --cohort USER,... or --cohort similar:K (the K most similar "
            "profiles)"
        )
    return own, pooled, train, held_out


@quiet_third_party()
def train_user_dpo(
    store: ContextStore,
    user_id: str,
    text_model: TextModel,
    settings: DpoSettings | None = None,
    should_stop: StopCheck | None = None,
    on_step: OnStep | None = None,
) -> Path:
    """Train the user's dpo adapter from their feedback; returns the artifact folder.
    ``should_stop`` is asked after every step (``TrainingCancelled``, nothing saved);
    ``on_step`` is told each step's loss."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    settings = settings or DpoSettings()
    _cohort_choice(settings, user_id)  # a bad similarity list fails before any model loads
    own, pooled, train, held_out = training_pairs(store, user_id, settings)
    start = usable_lora(store, user_id, text_model)
    began = time.perf_counter()
    base, tokenizer = fresh_base(text_model)
    policy = new_lora(base, settings.lora, start)
    # The reference is the adapter-free base. TRL copies a loaded adapter as its reference
    # unless given one, so a user's LoRA comes with a plain base beside it.
    reference = fresh_base(text_model)[0] if start is not None else None
    measured = (held_out or train) if settings.measure else []
    before = preference_metrics(policy, tokenizer, measured, settings.beta)
    rows = [
        {"prompt": prompt_text(tokenizer, p.prompt), "chosen": p.chosen, "rejected": p.rejected}
        for p in train
    ]
    with tempfile.TemporaryDirectory(prefix="pgen-dpo-") as scratch:
        args = DPOConfig(
            output_dir=scratch,
            beta=settings.beta,
            learning_rate=settings.learning_rate,
            num_train_epochs=settings.epochs,
            max_steps=settings.max_steps if settings.max_steps is not None else -1,
            per_device_train_batch_size=settings.batch_size,
            max_length=settings.max_length,
            seed=settings.seed,
            gradient_checkpointing=False,  # small models on CPU: memory is not the limit
            bf16=False,  # TRL's default is bf16; the weights and the margins stay float32
            save_strategy="no",
            report_to="none",
            logging_steps=1,
            disable_tqdm=True,  # pgen's bar (below) instead of TRL's bar and log lines
            use_cpu=str(getattr(text_model, "device", "cpu")) == "cpu",
        )
        trainer = DPOTrainer(
            model=policy,
            ref_model=reference,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
        )
        from transformers import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)  # TRL's raw loss dicts
        trainer.remove_callback(ProgressCallback)
        progress = _progress_callback(TrainerCallback, settings.progress, on_step, user_id)
        trainer.add_callback(progress)
        if should_stop is not None:

            class Stop(TrainerCallback):
                def on_step_end(self, *args: Any, **kwargs: Any) -> None:
                    stop_if_asked(should_stop)

            trainer.add_callback(Stop())
        try:
            trainer.train()
        finally:  # a stopped run's bar too
            if progress.bar is not None:
                progress.bar.close()
    model = trainer.model
    after = preference_metrics(model, tokenizer, measured, settings.beta)
    meta = dpo_meta(
        user_id,
        text_model,
        settings,
        (own, pooled, train, held_out),
        (before, after),
        start is not None,
        began,
    )
    return save_adapter(model, store.artifact_path(user_id, "dpo", ADAPTER_NAME), meta)


def dpo_meta(
    user_id: str,
    text_model: TextModel,
    settings: DpoSettings,
    pairs: tuple[list[Pair], list[Pair], list[Pair], list[Pair]],
    measured: tuple[dict[str, float], dict[str, float]],
    from_lora: bool,
    began: float,
    **extra: Any,
) -> ArtifactMeta:
    """The metadata of a user's dpo adapter, however it was trained (alone or gathered):
    ``pairs`` as ``training_pairs`` returns them, ``measured`` before and after."""
    own, pooled, train, held_out = pairs
    return ArtifactMeta(
        kind="dpo",
        user_id=user_id,
        name=ADAPTER_NAME,
        base_model=text_model.name,
        fingerprint=pairs_fingerprint([*own, *pooled]),
        settings=settings.as_dict(),
        extra={
            "pairs": len(own),
            "train_pairs": len(train),
            "cohort_pairs": len(pooled),
            "cohort": [m for m in settings.cohort if m != user_id],
            **_cohort_choice(settings, user_id),
            "measured_on": "held-out pairs" if held_out else "training pairs (too few to hold out)",
            "before": measured[0],
            "after": measured[1],
            "started_from": "lora" if from_lora else "fresh lora",
            "seconds": round(time.perf_counter() - began, 3),
            **extra,
        },
    )


def _progress_callback(base: type, show: bool, on_step: OnStep | None, user_id: str) -> Any:
    """A transformers callback driving pgen's ``StepBar`` ("training dpo", with the loss;
    ``on_step`` told) from each step's logged loss, in place of TRL's bar and log dicts."""

    class Progress(base):
        bar: StepBar | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = StepBar("dpo", state.max_steps, (user_id,), show=show, on_step=on_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            # logging_steps=1: every step logs its own loss (the run's end logs train_loss).
            if self.bar is not None and logs and "loss" in logs:
                self.bar.step(float(logs["loss"]))

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            log.info("dpo: %d steps trained", state.global_step)

    return Progress()


def _cohort_choice(settings: DpoSettings, user_id: str) -> dict[str, Any]:
    """How the cohort was chosen: named by the caller, or by profile similarity (then each
    member's cosine to the user's profile)."""
    if not settings.cohort_similarity:
        return {"cohort_by": "named" if settings.cohort else "none"}
    if len(settings.cohort_similarity) != len(settings.cohort):
        raise ValueError("cohort_similarity needs one similarity per cohort member")
    similarity = dict(zip(settings.cohort, settings.cohort_similarity, strict=True))
    similarity.pop(user_id, None)
    return {
        "cohort_by": "similar",
        "cohort_similarity": similarity,
        "cohort_space": settings.cohort_space,
    }


def usable_lora(store: ContextStore, user_id: str, text_model: TextModel) -> Path | None:
    """The user's lora folder when it fits this base model and their current documents."""
    folder = store.artifacts(user_id).get(("lora", ADAPTER_NAME))
    meta = read_meta(folder) if folder is not None else None
    if folder is None or meta is None:
        return None
    current = saved_lora_fingerprint(store, user_id, meta)
    return folder if meta.stale_reason(text_model.name, current) is None else None
