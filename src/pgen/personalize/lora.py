"""``lora``, ``lora+rag`` and ``dpo``: the user's own trained adapter on top of a prompt.

The prompt is the one of ``none`` (``lora``, ``dpo``) or of ``rag`` (``lora+rag``: the
literature's best combination, retrieval carrying most of the gain and the adapter adding
on top); the strategy only names the user's adapter, and the backend applies it to that
request's row of the batch. A user without an adapter runs on the base model, said in
the provenance. A stale adapter (a ``lora`` trained on documents that changed since, a
``dpo`` on feedback that changed) follows the ``stale_adapters`` setting (``Tools``):
``serve`` it, noted in the provenance and in ``details["stale_adapter"]`` (the service
queues a retrain on it), run on the ``base`` model, noted, or ``refuse`` with the command
that retrains it. An adapter trained on another base model cannot apply at all: refused,
or run on the base model.
"""

from __future__ import annotations

from pathlib import Path

from pgen.context.artifacts import ADAPTER_NAME, ArtifactMeta, read_meta, saved_lora_fingerprint
from pgen.context.base import ContextStore
from pgen.errors import StaleArtifact
from pgen.models.base import AdapterRef
from pgen.personalize.base import Modality, NoPersonalization, TextPlan, TextRequest, Tools
from pgen.personalize.rag import RetrievalAugmented


class StaleAdapterError(StaleArtifact):
    pass


def adapter_name(kind: str, user_id: str) -> str:
    """Unique per user and kind: the backend's cache key, and the model name a vLLM
    server serves the adapter under (``--lora-modules NAME=FOLDER``)."""
    return f"{kind}-{user_id}"


def retrain_command(user_id: str, kind: str) -> str:
    return f"pgen train --user {user_id} --method {kind}"


def _saved(store: ContextStore, user_id: str, kind: str) -> tuple[Path, ArtifactMeta] | None:
    folder = store.artifacts(user_id).get((kind, ADAPTER_NAME))
    meta = read_meta(folder) if folder is not None else None
    return None if folder is None or meta is None else (folder, meta)


def stale_reason(
    store: ContextStore, user_id: str, kind: str, base_model: str | None
) -> str | None:
    """Why the user's saved adapter of ``kind`` is behind its data (or, ``base_model``
    given, trained on another base model); None when it is current or there is none."""
    saved = _saved(store, user_id, kind)
    if saved is None:
        return None
    _, meta = saved
    if base_model is not None and meta.base_model != base_model:
        return meta.stale_reason(base_model)
    if kind == "lora":
        return meta.stale_reason(meta.base_model, saved_lora_fingerprint(store, user_id, meta))
    if kind == "dpo":
        from pgen.usermodel.preferences import feedback_fingerprint

        if feedback_fingerprint(store, user_id, meta) != meta.fingerprint:
            return "feedback changed since it was trained"
    return None


STALE_POLICIES = ("serve", "base", "refuse")


def user_adapter(
    store: ContextStore,
    user_id: str,
    kind: str,
    base_model: str,
    notes: list[str],
    policy: str = "serve",
    details: dict[str, object] | None = None,
) -> AdapterRef | None:
    """The user's adapter of ``kind`` if it applies; None (and a note) when there is none.
    A stale one follows ``policy`` (see the module's docstring)."""
    if policy not in STALE_POLICIES:
        raise ValueError(f"stale_adapters must be one of {', '.join(STALE_POLICIES)}")
    saved = _saved(store, user_id, kind)
    if saved is None:
        notes.append(
            f"user has no {kind} adapter: ran on the base model ({retrain_command(user_id, kind)})"
        )
        return None
    folder, meta = saved
    stale = stale_reason(store, user_id, kind, base_model)
    if stale is not None:
        said = f"the {kind} adapter of user {user_id!r} is stale ({stale})"
        retrain = retrain_command(user_id, kind)
        if policy == "refuse":
            raise StaleAdapterError(f"{said}; retrain: {retrain}")
        if policy == "base" or meta.base_model != base_model:
            notes.append(f"{said}: ran on the base model ({retrain})")
            return None
        notes.append(f"{said}: served as it is until retrained ({retrain})")
        if details is not None:
            details["stale_adapter"] = kind
    return AdapterRef(kind, adapter_name(kind, user_id), folder, dict(meta.settings))


class _WithAdapter:
    """A prompt-building strategy plus the user's adapter of ``kind``."""

    modality: Modality = "text"

    def __init__(
        self, name: str, kind: str, prompt: NoPersonalization | RetrievalAugmented, about: str
    ) -> None:
        self.name = name
        self.kind = kind
        self.adapter_kind: str | None = kind
        self.prompt = prompt
        self.description = about
        self.retrieves = bool(getattr(prompt, "retrieves", False))

    def prepare(self, requests: list[TextRequest], tools: Tools) -> list[TextPlan]:
        prepared = self.prompt.prepare(requests, tools)
        base_model = tools.text_model.name
        for request, item in zip(requests, prepared, strict=True):
            item.adapter = user_adapter(
                tools.store,
                request.user_id,
                self.kind,
                base_model,
                item.provenance.notes,
                tools.stale_adapters,
                item.details,
            )
            if item.adapter is not None:
                item.provenance.artifacts.append(str(item.adapter.path))
            item.details["adapter"] = item.adapter.name if item.adapter else None
        return prepared


def adapter_strategies() -> tuple[_WithAdapter, ...]:
    return (
        _WithAdapter(
            "lora", "lora", NoPersonalization(), "the user's own LoRA (trained on their documents)"
        ),
        _WithAdapter(
            "lora+rag",
            "lora",
            RetrievalAugmented(),
            "the user's top-k documents in the prompt and the user's own LoRA",
        ),
        _WithAdapter(
            "dpo",
            "dpo",
            NoPersonalization(),
            "the user's adapter preference-tuned (DPO) on their feedback",
        ),
    )
