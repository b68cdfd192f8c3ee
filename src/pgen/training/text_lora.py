"""Per-user LoRA adapters for text models, trained on the user's own documents (OPPU).

``train_user_lora`` turns one user's documents into examples (``training.examples``),
fine-tunes a PEFT LoRA on a fresh copy of the base model (the serving model is never
touched), with the loss on the output tokens only, and saves it as the user's artifact:
a PEFT folder (``PeftModel.from_pretrained`` loads it) plus ``pgen_artifact.json`` with
the base model, the documents' fingerprint and the settings. A user's adapter can start
from the shared task adapter (``LoraSettings.from_task``; ``training.task_lora`` trains
it), so it carries the task and the user at once and still serves alone in a mixed batch.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pgen.context.artifacts import (
    ADAPTER_NAME,
    META_FILE,
    ArtifactMeta,
    lora_fingerprint,
    read_meta,
    task_adapter_path,
    write_meta,
)
from pgen.context.base import ContextStore
from pgen.models.base import TextModel
from pgen.models.lora_gather import PEFT_PREFIX
from pgen.training.examples import Example, user_examples
from pgen.training.progress import OnStep, StepBar
from pgen.training.stopping import StopCheck, stop_if_asked


@dataclass(frozen=True)
class LoraSettings:
    """Rank 8, alpha 8, the attention's query and value projections (OPPU's), at a learning
    rate chosen by measurement: 3e-3 lowered the held-out loss of every measured user more
    than OPPU's 2e-4 (-0.217 against -0.023 nats a token), 1e-3 or 1e-2, and adding the key
    and output projections gained nothing at it (benchmarks/lora_defaults.py,
    docs/benchmarks.md)."""

    rank: int = 8
    alpha: int = 8
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    epochs: int = 2
    learning_rate: float = 3e-3
    batch_size: int = 4
    max_length: int = 512  # tokens of prompt + output per example
    max_steps: int | None = None  # a cap on optimizer steps (tests, quick runs)
    recent: int | None = None  # train on the user's N most recent documents only (CPU cost)
    # The newest share of the user's documents kept out of training, to measure the adapter
    # on (only when they have at least HOLDOUT_MIN documents; else it is measured on the
    # training documents, and says so).
    holdout: float = 0.1
    seed: int = 0
    task: str | None = None  # an example template of training.examples (None: plain)
    from_task: bool = False  # start from the shared task adapter of ``task``
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("rank, alpha, epochs and batch_size must be positive")
        if not 0 <= self.dropout < 1 or self.learning_rate <= 0:
            raise ValueError("dropout must be in [0, 1) and learning_rate > 0")
        if not 0 <= self.holdout < 1:
            raise ValueError("holdout must be in [0, 1)")

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["target_modules"] = list(self.target_modules)
        values.pop("progress")
        return values


def model_folder(text_model: TextModel) -> str:
    """Where the base model's weights are: training loads its own copy from there."""
    path = getattr(text_model, "path", None)
    if not path:
        raise TypeError(
            f"training needs a local transformers text model, not {text_model.name} "
            "(train with --text-model smollm2, a folder or an HF id; serve anywhere)"
        )
    return str(path)


def fresh_base(text_model: TextModel) -> tuple[Any, Any]:
    """A trainable copy of the base model and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = model_folder(text_model)
    model: Any = AutoModelForCausalLM.from_pretrained(folder)
    model.to(str(getattr(text_model, "device", "cpu")))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def prompt_text(tokenizer: Any, instruction: str) -> str:
    """The prompt exactly as the ``lora`` strategy renders it at inference."""
    from pgen.personalize.base import chat  # not at import: personalize imports this module

    messages = [{"role": m.role, "content": m.content} for m in chat(instruction)]
    if tokenizer.chat_template:
        return str(
            tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        )
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def encode(tokenizer: Any, example: Example, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels: -100 on the prompt, so the loss is on the output only. An
    example over ``max_length`` keeps the prompt's end and the output's start."""
    prompt = tokenizer(prompt_text(tokenizer, example.instruction), add_special_tokens=False)
    output = tokenizer(example.output, add_special_tokens=False)["input_ids"]
    output = [*output, tokenizer.eos_token_id][: max(1, max_length // 2)]
    prompt_ids = prompt["input_ids"][-(max_length - len(output)) :]
    return prompt_ids + output, [-100] * len(prompt_ids) + output


def new_lora(model: Any, settings: LoraSettings, start: Path | None) -> Any:
    """The base wrapped with a trainable LoRA: fresh, or a copy of a saved one."""
    import torch
    from peft import PeftModel

    from pgen.models.quiet import quiet_third_party

    torch.manual_seed(settings.seed)  # the dropout masks
    if start is not None:
        with quiet_third_party():  # PEFT reads a property transformers deprecates
            return PeftModel.from_pretrained(model, str(start), is_trainable=True)
    peft = with_lora(model, settings)
    with torch.no_grad():
        for name, module in peft.named_modules():
            if hasattr(module, "lora_A") and "default" in module.lora_A:
                down = module.lora_A["default"].weight
                down.copy_(initial_down(name.removeprefix(PEFT_PREFIX), down.shape, settings.seed))
    return peft


def with_lora(model: Any, settings: LoraSettings) -> Any:
    """``model`` wrapped by PEFT with a fresh LoRA of ``settings``' shape."""
    from peft import get_peft_model

    from pgen.models.quiet import quiet_third_party

    with quiet_third_party():  # PEFT reads a property transformers deprecates
        return get_peft_model(model, lora_config(settings))


def lora_config(settings: LoraSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        task_type="CAUSAL_LM",
    )


def initial_down(module: str, shape: Sequence[int], seed: int) -> Any:
    """A fresh LoRA's A (rank, in) for ``module``: PEFT's uniform(±1/sqrt(in)), drawn from the
    seed and the module's name alone, so that a user's start never depends on what else
    was built before it (gathered training builds many users' adapters on one base)."""
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(module.encode()))
    rank, fan_in = int(shape[0]), int(shape[1])
    return (torch.rand(rank, fan_in, generator=generator) * 2 - 1) / math.sqrt(fan_in)


def step_indices(
    count: int, batch_size: int, epochs: int, max_steps: int | None, seed: int
) -> list[list[int]]:
    """Which examples each optimizer step takes: epochs of a fresh seeded shuffle, cut into
    batches, capped at ``max_steps``. The one data order of the per-user and gathered loops."""
    import torch

    total = -(-count // batch_size) * epochs
    if max_steps is not None:
        total = min(total, max_steps)
    order = torch.Generator().manual_seed(seed)
    steps: list[list[int]] = []
    while len(steps) < total:
        permutation = torch.randperm(count, generator=order).tolist()
        for start in range(0, count, batch_size):
            if len(steps) >= total:
                break
            steps.append(permutation[start : start + batch_size])
    return steps


def fit(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    settings: LoraSettings,
    should_stop: StopCheck | None = None,
    on_step: OnStep | None = None,
    users: Sequence[str] = (),
    what: str = "lora",
) -> list[float]:
    """Plain AdamW over the LoRA weights; one loss per step comes back. ``should_stop``
    is asked before every step (``TrainingCancelled`` when it says so); ``on_step`` is
    told after each, with ``users`` (whose adapter this is)."""
    import torch

    encoded = [encode(tokenizer, e, settings.max_length) for e in examples]
    steps = step_indices(
        len(encoded), settings.batch_size, settings.epochs, settings.max_steps, settings.seed
    )
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate
    )
    pad = int(tokenizer.pad_token_id)
    device = next(model.parameters()).device
    losses: list[float] = []
    model.train()
    with StepBar(what, len(steps), users, show=settings.progress, on_step=on_step) as bar:
        for step in steps:
            stop_if_asked(should_stop)
            rows = [encoded[i] for i in step]
            width = max(len(ids) for ids, _ in rows)
            ids = torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows], device=device)
            labels = [r[1] + [-100] * (width - len(r[1])) for r in rows]
            mask = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
            loss = model(
                input_ids=ids,
                attention_mask=mask.to(device),
                labels=torch.tensor(labels, device=device),
            ).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            bar.step(losses[-1])
    model.eval()
    return losses


def save_adapter(model: Any, folder: Path, meta: ArtifactMeta) -> Path:
    """PEFT files first, metadata last: a folder without metadata is never used, so a
    retrain that dies halfway leaves no adapter rather than a torn one."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META_FILE).unlink(missing_ok=True)
    model.save_pretrained(str(folder))
    write_meta(folder, meta)
    return folder


def settings_fingerprint(store: ContextStore, user_id: str, settings: LoraSettings) -> str:
    """The user's adapter trained with ``settings``, as its data stands now."""
    return lora_fingerprint(store, user_id, settings.task, settings.from_task)


def recent_examples(
    store: ContextStore, user_id: str, task: str | None, recent: int | None
) -> list[Example]:
    """The user's examples, the ``recent`` newest only when capped (documents come oldest
    first; undated ones by id)."""
    examples = user_examples(store, user_id, task)
    return examples[-recent:] if recent else examples


HOLDOUT_MIN = 10  # documents a user needs before some are held out


def split_examples(
    examples: Sequence[Example], holdout: float
) -> tuple[list[Example], list[Example]]:
    """Training and held-out examples: the newest ``holdout`` share held out (documents
    come oldest first), none when the user has fewer than ``HOLDOUT_MIN``."""
    count = round(len(examples) * holdout) if len(examples) >= HOLDOUT_MIN else 0
    if count == 0:
        return list(examples), []
    return list(examples[:-count]), list(examples[-count:])


def user_split(
    store: ContextStore, user_id: str, settings: LoraSettings
) -> tuple[list[Example], list[Example]]:
    """The user's training and held-out examples for ``settings``; none is refused."""
    examples = recent_examples(store, user_id, settings.task, settings.recent)
    if not examples:
        raise ValueError(f"user {user_id!r} has no documents with text to train a lora on")
    return split_examples(examples, settings.holdout)


def train_user_lora(
    store: ContextStore,
    user_id: str,
    text_model: TextModel,
    settings: LoraSettings | None = None,
    *,
    should_stop: StopCheck | None = None,
    on_step: OnStep | None = None,
) -> Path:
    """Train the user's LoRA on their own documents; returns the artifact folder."""
    settings = settings or LoraSettings()
    examples, held_out = user_split(store, user_id, settings)
    start = task_start(settings, store)
    began = time.perf_counter()
    base, tokenizer = fresh_base(text_model)
    model = new_lora(base, settings, start)
    losses = fit(model, tokenizer, examples, settings, should_stop, on_step, (user_id,))
    meta = lora_meta(store, user_id, text_model, settings, (examples, held_out), losses, began)
    return save_adapter(model, store.artifact_path(user_id, "lora", ADAPTER_NAME), meta)


def lora_meta(
    store: ContextStore,
    user_id: str,
    text_model: TextModel,
    settings: LoraSettings,
    split: tuple[Sequence[Example], Sequence[Example]],
    losses: Sequence[float],
    began: float,
    **extra: Any,
) -> ArtifactMeta:
    """The metadata of a user's lora, however it was trained (alone or gathered):
    ``split``, the training and held-out examples."""
    examples, held_out = split
    return ArtifactMeta(
        kind="lora",
        user_id=user_id,
        name=ADAPTER_NAME,
        base_model=text_model.name,
        fingerprint=settings_fingerprint(store, user_id, settings),
        settings=settings.as_dict(),
        extra={
            "examples": len(examples),
            "doc_ids": [e.doc_id for e in examples],
            "held_out_doc_ids": [e.doc_id for e in held_out],
            "steps": len(losses),
            "first_loss": losses[0],
            "last_loss": losses[-1],
            "seconds": round(time.perf_counter() - began, 3),
            **extra,
        },
    )


def task_start(settings: LoraSettings, store: ContextStore) -> Path | None:
    """The shared task adapter a user's lora starts from (``from_task``), or None."""
    if not settings.from_task:
        return None
    start = task_adapter_path(store, settings.task)
    if read_meta(start) is None:
        task = f" --task {settings.task}" if settings.task else ""
        raise FileNotFoundError(
            f"no task adapter for {settings.task or 'documents'}: "
            f"run pgen train --user USER --method task-lora{task}"
        )
    return start


def train_missing_loras(
    store: ContextStore,
    user_ids: Sequence[str],
    text_model: TextModel,
    settings: LoraSettings | None = None,
) -> dict[str, float]:
    """Train the ``lora`` of every user who lacks one that applies (none, stale, other
    settings' template); seconds per user trained. Benchmarks call this before ``lora``."""
    settings = settings or LoraSettings()
    seconds: dict[str, float] = {}
    for user_id in user_ids:
        if current_lora(store, user_id, text_model, settings) is not None:
            continue
        began = time.perf_counter()
        train_user_lora(store, user_id, text_model, settings)
        seconds[user_id] = time.perf_counter() - began
    return seconds


def current_lora(
    store: ContextStore, user_id: str, text_model: TextModel, settings: LoraSettings
) -> Path | None:
    """The user's lora folder when it was trained with ``settings`` on their documents as
    they stand now, on this base model: nothing to retrain (None: missing or stale)."""
    folder = store.artifacts(user_id).get(("lora", ADAPTER_NAME))
    meta = read_meta(folder) if folder is not None else None
    current = settings_fingerprint(store, user_id, settings)
    # Other caps (recent, epochs, ...) make another adapter: retrain then too.
    if (
        folder is not None
        and meta is not None
        and meta.settings == settings.as_dict()
        and meta.stale_reason(text_model.name, current) is None
    ):
        return folder
    return None
