"""The shared task adapter (OPPU stage 1): one LoRA over many users' examples, a
store-wide artifact that users' own adapters may start from (``LoraSettings.from_task``).
It is trained with the per-user adapter's loop (``training.text_lora``); its metadata
lists the users whose data it holds, so delete-user finds it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pgen.context.artifacts import ArtifactMeta, task_adapter_fingerprint, task_adapter_path
from pgen.context.base import ContextStore
from pgen.models.base import TextModel
from pgen.training.examples import user_examples
from pgen.training.progress import OnStep
from pgen.training.stopping import StopCheck
from pgen.training.text_lora import LoraSettings, fit, fresh_base, new_lora, save_adapter


def train_task_lora(
    store: ContextStore,
    user_ids: Sequence[str],
    text_model: TextModel,
    settings: LoraSettings | None = None,
    *,
    should_stop: StopCheck | None = None,
    on_step: OnStep | None = None,
) -> Path:
    """The shared task adapter over many users' examples (OPPU stage 1): a store-wide
    artifact, not any one user's (a user's own adapter may start from it)."""
    settings = settings or LoraSettings()
    examples = [e for user_id in user_ids for e in user_examples(store, user_id, settings.task)]
    if not examples:
        raise ValueError("no documents with text among the users given for a task adapter")
    base, tokenizer = fresh_base(text_model)
    model = new_lora(base, settings, None)
    losses = fit(model, tokenizer, examples, settings, should_stop, on_step, user_ids, "task-lora")
    hashes = {user_id: store.document_hashes(user_id) for user_id in user_ids}
    meta = ArtifactMeta(
        kind="task-lora",
        user_id="",
        name=settings.task or "documents",
        base_model=text_model.name,
        fingerprint=task_adapter_fingerprint(settings.task, hashes),
        settings=settings.as_dict(),
        extra={
            "users": len(user_ids),
            "user_ids": list(user_ids),  # whose data it holds: delete-user looks here
            "examples": len(examples),
            "steps": len(losses),
        },
    )
    return save_adapter(model, task_adapter_path(store, settings.task), meta)
