"""Protocols every model backend implements, so strategies never see a concrete backend."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeGuard, runtime_checkable

import numpy as np

from pgen.config import (
    GenerationSettings as GenerationSettings,  # re-exported: decoding is a model setting
)

if TYPE_CHECKING:
    from PIL import Image

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


Chat = list[Message]

BASE_ADAPTER = "__base__"  # what provenance says when a request ran on the plain base model


@dataclass(frozen=True)
class AdapterRef:
    """Per-user weights a backend applies for one request only.

    ``name`` is unique per user and artifact (the key of a backend's adapter cache, and the
    model name an OpenAI-compatible server such as vLLM serves the adapter under); ``path``
    is the artifact folder in a standard format (PEFT / diffusers), or None for weights
    that are not the user's (IP-Adapter: shared weights, the user's reference images).
    """

    kind: str  # lora, dpo, dreambooth-lora, textual-inversion, ip-adapter
    name: str
    path: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class TextModel(Protocol):
    """A chat/instruction text model (causal LM behind a chat template, or an HTTP server)."""

    name: str

    @property
    def context_length(self) -> int:
        """Tokens the model reads and writes in one request."""
        ...

    def generate(
        self,
        chats: list[Chat],
        config: GenerationSettings | None = None,
        adapters: Sequence[AdapterRef | None] | None = None,
    ) -> list[str]:
        """One reply per chat, generated in batches. ``adapters[i]`` (when given) is the
        per-user adapter for chat i only, None for the base model; a backend that cannot
        apply adapters raises a clear error rather than silently ignoring one."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that fits in ``max_tokens`` tokens."""
        ...


# Receives a reply's text as it is decoded, one delta (the new text) at a time.
TextSink = Callable[[str], None]


class StreamingTextModel(TextModel, Protocol):
    """A text model whose ``generate`` also hands each reply to a sink while decoding it."""

    def generate(
        self,
        chats: list[Chat],
        config: GenerationSettings | None = None,
        adapters: Sequence[AdapterRef | None] | None = None,
        *,
        sinks: Sequence[TextSink | None] | None = None,
    ) -> list[str]:
        """As ``TextModel.generate``; ``sinks[i]`` (when given and not None) receives chat
        i's reply in deltas, as they are decoded, whose concatenation is exactly the reply
        returned for chat i."""
        ...


def streams(model: TextModel) -> TypeGuard[StreamingTextModel]:
    """Whether ``model.generate`` takes ``sinks``. Asked of the signature: every text model
    has a ``generate``, so an isinstance check of the protocol could not tell them apart."""
    try:
        return "sinks" in inspect.signature(model.generate).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin, a C extension)
        return False


@runtime_checkable
class ChoiceModel(Protocol):
    """A text model that can say how likely each of a fixed set of replies is."""

    def choice_logprobs(
        self,
        chats: list[Chat],
        choices: list[str],
        adapters: Sequence[AdapterRef | None] | None = None,
    ) -> np.ndarray:
        """(len(chats), len(choices)) log-probabilities of each choice as the whole reply,
        row i through ``adapters[i]`` when given."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Text to unit-length vectors; ``model_id`` and ``dim`` identify the vector space."""

    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows L2-normalized."""
        ...


@dataclass(frozen=True)
class ImageGenerationSettings:
    """Sampling settings. Image ``k`` of every prompt uses seed ``seed + k``, so two methods
    compared at the same seed start from the same noise."""

    steps: int = 30
    guidance_scale: float = 7.5
    height: int | None = None  # None: the model's native resolution
    width: int | None = None
    seed: int = 0
    images_per_prompt: int = 1
    negative_prompt: str | None = None


@runtime_checkable
class ImageModel(Protocol):
    """A text-to-image model: a prompt in, PIL images out, with one request's adapter (a
    LoRA, a textual inversion, IP-Adapter images) applied for that request only."""

    name: str

    def generate(
        self, prompts: Sequence[str], config: ImageGenerationSettings | None = None
    ) -> list[Image.Image]:
        """``images_per_prompt`` images for each prompt, prompt by prompt."""
        ...

    def render(
        self,
        prompt: str,
        config: ImageGenerationSettings | None = None,
        adapter: AdapterRef | None = None,
        blend: tuple[str, float] | None = None,
    ) -> list[Image.Image]:
        """Images for one prepared request (see ``DiffusersImageModel.render``)."""
        ...
