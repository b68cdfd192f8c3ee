"""The one strategy contract, for text and images.

A strategy turns a request into a model input (a chat for text models, a prompt for image
models) and may name the user's own weights (an ``AdapterRef``: a LoRA, a DPO adapter, a
textual inversion, IP-Adapter image embeddings) that the backend applies for that request
only. What shaped the input is recorded in one ``Provenance`` shape for every modality.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pgen.context.base import ContextStore
from pgen.models.base import (
    AdapterRef,
    Chat,
    GenerationConfig,
    ImageGenerationConfig,
    ImageModel,
    Message,
    TextModel,
)
from pgen.personalize.prompts import remaining_budget
from pgen.usermodel.retrievers import Retrievers

if TYPE_CHECKING:
    from pgen.models.image import DiffusersImageModel

Modality = Literal["text", "image", "vision"]  # vision: requests that carry an image


@dataclass
class Provenance:
    """Which context and artifacts shaped an output: the same shape for text and images."""

    documents: list[str] = field(default_factory=list)  # the user's document ids
    items: list[str] = field(default_factory=list)  # catalog item ids
    subjects: list[str] = field(default_factory=list)  # the user's subject names
    artifacts: list[str] = field(default_factory=list)  # artifact names or folders
    model: str = ""  # the backend that generated, and the adapter applied ("__base__": none)
    notes: list[str] = field(default_factory=list)  # e.g. what was cut to fit the prompt

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Request:
    """One user asking for text."""

    user_id: str
    instruction: str
    strategy: str = "rag"
    k: int = 4
    retriever: str = "bm25"
    query: str | None = None  # what to retrieve with, when it differs from the instruction


@dataclass(frozen=True)
class ImageRequest:
    """One user asking for images. ``subject``/``method``: which of the user's subjects and
    how it enters (a trained artifact or IP-Adapter); ``keywords_weight``: the share of the
    preference keywords in the conditioning (``keywords``)."""

    user_id: str
    instruction: str
    strategy: str = "none"
    subject: str | None = None
    method: str | None = None
    keywords_weight: float = 0.3
    ip_adapter: Any = None  # pgen.personalize.subject.IPAdapterSpec (typed there)


@dataclass
class Prepared:
    """The model input a strategy built, the user's adapter to apply, and what shaped it."""

    chat: Chat | None = None  # text models' input
    prompt: str | None = None  # image models' input
    provenance: Provenance = field(default_factory=Provenance)
    adapter: AdapterRef | None = None
    details: dict[str, Any] = field(default_factory=dict)
    image_inputs: dict[str, Any] = field(default_factory=dict)  # e.g. blended conditioning


@dataclass
class Tools:
    """What strategies may use. Models load on first use (a strategy that needs no text
    model never loads one). ``prompt_tokens`` caps the prompt, whatever the model allows,
    because prompt length is most of the cost on CPU."""

    store: ContextStore
    retrievers: Retrievers
    load_text_model: Callable[[], TextModel]
    generation: GenerationConfig
    prompt_tokens: int = 1024
    load_image_model: Callable[[], DiffusersImageModel] | None = None
    sampling: ImageGenerationConfig | None = None

    @property
    def text_model(self) -> TextModel:
        return self.load_text_model()

    @property
    def image_model(self) -> DiffusersImageModel:
        if self.load_image_model is None:
            raise ValueError("this engine has no image model (set image_model in the config)")
        return self.load_image_model()

    @property
    def prompt_budget(self) -> int:
        """Tokens available for the prompt: the cap, within the model's context minus the reply."""
        room = self.text_model.context_length - self.generation.max_new_tokens
        return max(0, min(self.prompt_tokens, room))

    def instruction(self, request: Request, notes: list[str] | None = None) -> str:
        """The instruction, cut at the end if alone it would not fit the prompt budget (as
        LaMP's truncating tokenizer does); context items get whatever room it leaves. A cut
        is said in ``notes`` (it ends up in the output's provenance)."""
        room = remaining_budget(self.text_model, self.prompt_budget, SYSTEM)
        fitted = self.text_model.truncate(request.instruction, room)
        if notes is not None and len(fitted) < len(request.instruction):
            notes.append(
                f"instruction cut to {len(fitted)} of {len(request.instruction)} characters "
                f"to fit the {self.prompt_budget}-token prompt"
            )
        return fitted

    def fit(self, system: str, instruction: str) -> str:
        """The system message, cut to what the (fitted) instruction leaves of the budget."""
        return self.text_model.truncate(
            system, remaining_budget(self.text_model, self.prompt_budget, instruction)
        )


def image_tools(
    store: ContextStore,
    image_model: DiffusersImageModel,
    text_model: Callable[[], TextModel] | None = None,
) -> Tools:
    """Tools for image strategies run outside an engine (benchmarks, tests of one strategy)."""
    from pgen.usermodel.retrievers import Retrievers

    def no_text_model() -> TextModel:
        raise ValueError("this strategy needs a text model, and none was given")

    def no_embedder() -> Any:
        raise ValueError("no embedder was given")

    return Tools(
        store,
        Retrievers(store, no_embedder),
        text_model or no_text_model,
        GenerationConfig(),
        load_image_model=lambda: image_model,
    )


def render_images(
    model: ImageModel, prepared: Prepared, config: ImageGenerationConfig | None
) -> list[Any]:
    """The images of one prepared image request, whatever its strategy: its prompt (or, when
    it blends a preference into the conditioning, the instruction and the preference) with
    its adapter applied for this request only."""
    blend = prepared.image_inputs.get("blend")
    prompt = prepared.image_inputs.get("instruction", prepared.prompt) if blend else prepared.prompt
    if prompt is None:
        raise TypeError("an image strategy prepared no prompt")
    return model.render(prompt, config, prepared.adapter, blend)


class Strategy(Protocol):
    """How personalization enters generation. ``modality`` says which requests it takes and
    which tools it gets: ``Request`` and ``Tools`` for text, ``ImageRequest`` and ``Tools``
    for images, ``AnswerRequest`` and ``VisionTools`` (``pgen.personalize.concepts``) for
    requests that carry a photo. Each returns its modality's prepared input with the user's
    adapter, if any, and a ``Provenance``."""

    name: str
    modality: Modality
    description: str

    def prepare(self, requests: list[Any], tools: Any) -> list[Any]:
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
    modality: Modality = "text"
    description = "the instruction alone (the baseline of every comparison)"

    def prepare(self, requests: list[Request], tools: Tools) -> list[Prepared]:
        prepared = []
        for request in requests:
            notes: list[str] = []
            instruction = tools.instruction(request, notes)
            prepared.append(Prepared(chat(instruction), provenance=Provenance(notes=notes)))
        return prepared
