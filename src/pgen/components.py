"""What strategies and trainers are handed: the requests of each modality, the plan a
strategy builds, the tools it may use, the chat shape and the prompt budget.

A **plan** is the model input for its modality (a chat, an image prompt, a vision chat),
the user's adapter to apply for that request only (if any) and the ``Provenance`` of what
shaped it. Every modality's plan has the three fields ``provenance``, ``adapter`` and
``details``; the model input is the modality's own. This module sits below
``personalize/`` (strategies) and ``training/`` (trainers): both read it, neither imports
the other.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from dataclasses import replace as dataclass_replace
from typing import TYPE_CHECKING, Any, Protocol

from pgen.config import GenerationSettings
from pgen.context.base import ContextStore
from pgen.models.base import AdapterRef, Chat, Message, TextModel
from pgen.usermodel.retrievers import Retrievers

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from pgen.models.image import DiffusersImageModel, ImageGenerationSettings
    from pgen.models.vision import VisionChat
    from pgen.usermodel.concepts import ConceptMemory
    from pgen.usermodel.faces import Recognized

# A modality's name: "text", "image", "vision" are built in; ``pgen.run.modalities``
# registers them and any other (its request type, tools, executor and model role).
Modality = str

SYSTEM = "You are a helpful assistant."


@dataclass
class Provenance:
    """Which context and artifacts shaped an output: the same shape for every modality."""

    documents: list[str] = field(default_factory=list)  # the user's document ids
    items: list[str] = field(default_factory=list)  # catalog item ids
    subjects: list[str] = field(default_factory=list)  # the user's subject names
    artifacts: list[str] = field(default_factory=list)  # artifact names or folders
    model: str = ""  # the backend that generated, and the adapter applied ("__base__": none)
    notes: list[str] = field(default_factory=list)  # e.g. what was cut to fit the prompt
    preferences: list[str] = field(default_factory=list)  # the user's stated preference ids

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- requests ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TextRequest:
    """One user asking for text."""

    user_id: str
    instruction: str
    strategy: str = "rag"
    k: int = 4
    retriever: str = "bm25"
    query: str | None = None  # what to retrieve with, when it differs from the instruction
    # Whom the model writes as or for: "author" (the user's own text), "assistant" (an
    # answer for the user) or "auto" (chosen from the instruction; personalize/frames.py).
    frame: str = "auto"
    # Earlier turns of a conversation (user and assistant), oldest first: real chat messages
    # between the system message and this turn, fitted to the prompt budget.
    history: tuple[Message, ...] = ()


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
    # The strategy's IP-Adapter: pgen.personalize.subject.IPAdapterSpec (``subject``) or
    # pgen.personalize.face_id.FaceIDSpec (``face-id``), typed there; None: the defaults.
    ip_adapter: Any = None


@dataclass(frozen=True)
class AnswerRequest:
    """One user asking about one of their photos (``image``: opened and checked when the
    request is checked; ``image_path`` is what the output records)."""

    user_id: str
    image_path: str
    instruction: str
    strategy: str = "concepts"
    k: int = 2  # concepts retrieved at most
    image: Any = None  # PIL.Image.Image, set by the vision modality's check


MAX_FRAMES = 32  # the longest clip a request may ask for (AnimateDiff adapters: 24-32)


@dataclass(frozen=True)
class VideoRequest:
    """One user asking for a clip: ``none`` or their ``subject`` (a trained artifact) in an
    AnimateDiff pipeline built from the image model and ``motion_adapter`` (a Hub id, a
    folder or a weight file; None: the default adapter)."""

    user_id: str
    instruction: str
    strategy: str = "none"
    subject: str | None = None
    method: str | None = None  # dreambooth-lora or textual-inversion (default: best trained)
    frames: int = 16
    fps: int = 8
    seed: int = 0
    motion_adapter: str | None = None


@dataclass(frozen=True)
class ShapeRequest:
    """One user asking for a 3D asset of one of their subjects (``3d``): ``subject`` makes it
    from the reference photo most typical of the subject (the concept memory's embeddings).
    The instruction names the subject (or ``subject`` does); CLIP-T scores views against it."""

    user_id: str
    instruction: str
    strategy: str = "subject"
    subject: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class PostRequest:
    """One user asking for a post: a caption in their voice (``caption``: a text strategy)
    and an image from their preferences or subjects (``image``: an image strategy).
    ``joint`` prompts the image from the caption; ``independent`` makes the two apart
    from the same instruction (the comparison)."""

    user_id: str
    instruction: str
    strategy: str = "joint"
    caption: str = "rag"
    image: str = "keywords"
    subject: str | None = None
    k: int = 4
    retriever: str = "bm25"
    seed: int = 0


# -- plans ------------------------------------------------------------------------------
class Plan(Protocol):
    """What every modality's plan carries besides its model input."""

    provenance: Provenance
    adapter: AdapterRef | None
    details: dict[str, Any]


@dataclass
class TextPlan:
    chat: Chat
    provenance: Provenance = field(default_factory=Provenance)
    adapter: AdapterRef | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImagePlan:
    """``blend``: (preference prompt, weight) mixed into the instruction's conditioning;
    the executor then renders ``instruction`` with the blend instead of ``prompt``."""

    prompt: str
    provenance: Provenance = field(default_factory=Provenance)
    adapter: AdapterRef | None = None
    details: dict[str, Any] = field(default_factory=dict)
    instruction: str | None = None
    blend: tuple[str, float] | None = None


@dataclass
class VisionPlan:
    chat: VisionChat
    provenance: Provenance = field(default_factory=Provenance)
    details: dict[str, Any] = field(default_factory=dict)
    soft_tokens: Any = None  # vectors for the prompt's placeholder slots, in order
    adapter: AdapterRef | None = None


# -- tools ------------------------------------------------------------------------------
@dataclass
class Tools:
    """What text and image strategies (and trainers) may use. Models load on first use (a
    strategy that needs no text model never loads one). ``prompt_tokens`` caps the prompt,
    whatever the model allows, because prompt length is most of the cost on CPU."""

    store: ContextStore
    retrievers: Retrievers
    load_text_model: Callable[[], TextModel]
    generation: GenerationSettings
    prompt_tokens: int = 1024
    load_image_model: Callable[[], DiffusersImageModel] | None = None
    sampling: ImageGenerationSettings | None = None
    load_model: Callable[[str], Any] | None = None  # any modality's model, by its role
    # A user's adapter trained on data that changed since: "serve" it (noted), run on the
    # "base" model (noted), or "refuse" (StaleArtifact, naming the command that retrains).
    stale_adapters: str = "serve"

    @property
    def text_model(self) -> TextModel:
        return self.load_text_model()

    @property
    def image_model(self) -> DiffusersImageModel:
        if self.load_image_model is None:
            raise ValueError("this engine has no image model (set image_model in the config)")
        return self.load_image_model()

    def model(self, role: str) -> Any:
        if self.load_model is None:
            raise ValueError(f"no {role} model was given")
        return self.load_model(role)

    @property
    def prompt_budget(self) -> int:
        """Tokens available for the prompt: the cap, within the model's context minus the reply."""
        room = self.text_model.context_length - self.generation.max_new_tokens
        return max(0, min(self.prompt_tokens, room))

    def instruction(self, request: TextRequest, notes: list[str] | None = None) -> str:
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

    def no_text_model() -> TextModel:
        raise ValueError("this strategy needs a text model, and none was given")

    def no_embedder() -> Any:
        raise ValueError("no embedder was given")

    return Tools(
        store,
        Retrievers(store, no_embedder),
        text_model or no_text_model,
        GenerationSettings(),
        load_image_model=lambda: image_model,
    )


@dataclass(frozen=True)
class LearnedConcept:
    """One concept's trained tokens (see ``pgen.training.concept_tokens``)."""

    name: str
    class_word: str
    tokens: Any  # torch tensor (n, hidden)
    folder: str


@dataclass
class VisionTools:
    """What strategies for requests with a photo may use: the user's concept memory, the
    photo's vector, the user's learned concept tokens and the model's placeholder text,
    each on first use."""

    memory: Callable[[str], ConceptMemory]
    query_vector: Callable[[Image.Image], np.ndarray]
    concept_tokens: Callable[[str], list[LearnedConcept]] = lambda user_id: []
    placeholder: Callable[[], str] = lambda: ""
    # The user's people (person subjects) recognized by face in a photo; None: no faces.
    people: Callable[[str, Image.Image], Recognized | None] = lambda user_id, image: None


# -- chat and prompt budget -------------------------------------------------------------
def chat(user_text: str, system: str = SYSTEM) -> Chat:
    """Context goes in the system message, the instruction alone in the user's turn:
    small chat models otherwise answer the context ("glad you liked my post!")."""
    return [Message("system", system), Message("user", user_text)]


HISTORY_SHARE = 2  # earlier turns get at most 1/2 of the prompt budget
MESSAGE_TOKENS = 8  # what the chat template adds around one more message, with a margin


def fit_history(
    model: TextModel, history: tuple[Message, ...], room: int
) -> tuple[list[Message], int]:
    """The newest earlier turns whose tokens fit ``room`` (oldest dropped first), and how
    many were dropped."""
    kept: list[Message] = []
    used = 0
    for message in reversed(history):
        cost = model.count_tokens(message.content) + MESSAGE_TOKENS
        if used + cost > room:
            break
        kept.insert(0, message)
        used += cost
    return kept, len(history) - len(kept)


def history_tokens(model: TextModel, history: list[Message]) -> int:
    return sum(model.count_tokens(m.content) + MESSAGE_TOKENS for m in history)


def with_history(chat: Chat, history: list[Message]) -> Chat:
    """The chat with earlier turns between the system message and the final user turn."""
    return [*chat[:-1], *history, *chat[-1:]]


def prepare_with_history(
    strategy: Any, requests: list[TextRequest], tools: Tools
) -> list[TextPlan]:
    """Plans of a batch; a request with earlier turns gets them as chat messages between
    the system message and its own turn, within the prompt budget (at most half of it,
    oldest dropped first and said in the provenance), the strategy fitting its part to
    what they leave."""
    alone = [i for i, r in enumerate(requests) if not r.history]
    plans = dict(zip(alone, strategy.prepare([requests[i] for i in alone], tools), strict=True))
    for index, request in enumerate(requests):
        if not request.history:
            continue
        model, budget = tools.text_model, tools.prompt_budget
        kept, dropped = fit_history(model, request.history, budget // HISTORY_SHARE)
        room = max(1, budget - history_tokens(model, kept))
        narrowed = dataclass_replace(tools, prompt_tokens=room)
        plan = strategy.prepare([request], narrowed)[0]
        plan.chat = with_history(plan.chat, kept)
        plan.details["earlier_turns"] = len(kept)
        if dropped:
            plan.provenance.notes.append(
                f"{dropped} of {len(request.history)} earlier turns dropped (oldest first) "
                f"to fit the {budget}-token prompt"
            )
        plans[index] = plan
    return [plans[i] for i in range(len(requests))]


def template_tokens(model: TextModel) -> int:
    """What the chat template adds around a system and a user message, plus a margin for
    parts that tokenize differently once joined (32 for a model that cannot render)."""
    try:
        return _TEMPLATE_TOKENS[model]  # the same for every request: measured once per model
    except (KeyError, TypeError):
        pass
    render = getattr(model, "render", None)
    empty = [Message("system", ""), Message("user", "")]
    count = 32 if render is None else model.count_tokens(render(empty)) + 8
    with contextlib.suppress(TypeError):  # a model that cannot be weakly referenced
        _TEMPLATE_TOKENS[model] = count
    return count


_TEMPLATE_TOKENS: weakref.WeakKeyDictionary[TextModel, int] = weakref.WeakKeyDictionary()


def remaining_budget(model: TextModel, budget: int, *fixed_parts: str) -> int:
    """Tokens left for context once the fixed parts of the prompt and the chat
    template's own tokens are counted."""
    return budget - sum(model.count_tokens(part) for part in fixed_parts) - template_tokens(model)
