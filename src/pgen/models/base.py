"""Protocols every model backend implements, so strategies never see a concrete backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


Chat = list[Message]


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. Greedy by default: benchmarks must be deterministic."""

    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    repetition_penalty: float = 1.0  # 1.0: off; small models loop less with ~1.15
    seed: int = 0


@runtime_checkable
class TextModel(Protocol):
    """A chat/instruction text model (causal LM behind a chat template, or an HTTP server)."""

    name: str

    @property
    def context_length(self) -> int:
        """Tokens the model reads and writes in one request."""
        ...

    def generate(self, chats: list[Chat], config: GenerationConfig | None = None) -> list[str]:
        """One reply per chat, generated in batches."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that fits in ``max_tokens`` tokens."""
        ...


@runtime_checkable
class ChoiceModel(Protocol):
    """A text model that can say how likely each of a fixed set of replies is."""

    def choice_logprobs(self, chats: list[Chat], choices: list[str]) -> np.ndarray:
        """(len(chats), len(choices)) log-probabilities of each choice as the whole reply."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Text to unit-length vectors; ``model_id`` and ``dim`` identify the vector space."""

    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows L2-normalized."""
        ...
