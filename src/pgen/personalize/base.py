"""What every strategy shares: the request, what a strategy prepares, and its tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pgen.context.store import Store
from pgen.models.base import Chat, GenerationConfig, Message, TextModel
from pgen.personalize.prompts import remaining_budget
from pgen.usermodel.retrievers import Retrievers


@dataclass(frozen=True)
class Request:
    """One user asking for one thing."""

    user_id: str
    instruction: str
    strategy: str = "rag"
    k: int = 4
    retriever: str = "bm25"
    query: str | None = None  # what to retrieve with, when it differs from the instruction


@dataclass
class Prepared:
    """The model input a strategy built, and which context items went into it."""

    chat: Chat
    provenance: list[str] = field(default_factory=list)  # document ids
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tools:
    """What strategies may use. ``prompt_tokens`` caps the prompt, whatever the model allows,
    because prompt length is most of the cost on CPU."""

    store: Store
    retrievers: Retrievers
    text_model: TextModel
    generation: GenerationConfig
    prompt_tokens: int = 1024

    @property
    def prompt_budget(self) -> int:
        """Tokens available for the prompt: the cap, within the model's context minus the reply."""
        room = self.text_model.context_length - self.generation.max_new_tokens
        return max(0, min(self.prompt_tokens, room))

    def instruction(self, request: Request) -> str:
        """The instruction, cut at the end if alone it would not fit the prompt budget (as
        LaMP's truncating tokenizer does); context items get whatever room it leaves."""
        room = remaining_budget(self.text_model, self.prompt_budget, SYSTEM)
        return self.text_model.truncate(request.instruction, room)

    def fit(self, system: str, instruction: str) -> str:
        """The system message, cut to what the (fitted) instruction leaves of the budget."""
        return self.text_model.truncate(
            system, remaining_budget(self.text_model, self.prompt_budget, instruction)
        )


class Strategy(Protocol):
    name: str

    def prepare(self, requests: list[Request], tools: Tools) -> list[Prepared]:
        """Model inputs for a batch of requests (a batch lets strategies batch model calls)."""
        ...


SYSTEM = "You are a helpful assistant."


def chat(user_text: str, system: str = SYSTEM) -> Chat:
    """Context goes in the system message, the instruction alone in the user's turn:
    small chat models otherwise answer the context ("glad you liked my post!")."""
    return [Message("system", system), Message("user", user_text)]


class NoPersonalization:
    """The baseline: the instruction alone."""

    name = "none"

    def prepare(self, requests: list[Request], tools: Tools) -> list[Prepared]:
        return [Prepared(chat(tools.instruction(request))) for request in requests]
