"""The modalities ``Engine.generate`` knows, each one entry: its request type, the role of
its model backend, its settings type, the tools its strategies get, its executor, and how
its output is recorded and answered. A new modality is a protocol and a backend (its model),
an executor, strategies registered in ``pgen.personalize.registry``, and one
``register_modality`` call: nothing else changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_args, get_type_hints

from pgen.components import (
    AnswerRequest,
    ImagePlan,
    ImageRequest,
    TextPlan,
    TextRequest,
    Tools,
    VisionPlan,
    VisionTools,
    template_tokens,
)
from pgen.config import GenerationSettings
from pgen.context.base import ContextStore
from pgen.errors import InvalidRequest
from pgen.factory import Lazy
from pgen.models.base import ImageGenerationSettings, TextSink
from pgen.models.executors import Executed, execute_image, execute_text, execute_vision
from pgen.personalize.stated import prepare_text
from pgen.results import Answer, Generation, ImageGeneration
from pgen.usermodel.retrievers import Retrievers


class Components:
    """Components by role, each built once on first use: the engine's own loaders, then
    ``build(role)`` for any other role (a new modality's model)."""

    def __init__(
        self, loaders: dict[str, Lazy[Any]], build: Callable[[str], Any] | None = None
    ) -> None:
        self._loaders = dict(loaders)
        self._build = build
        self._lock = threading.Lock()

    def load(self, role: str) -> Any:
        with self._lock:
            if role not in self._loaders:
                if self._build is None:
                    raise InvalidRequest(f"this engine has no {role} model (set it in the config)")
                build = self._build
                self._loaders[role] = Lazy(lambda: build(role))
            loader = self._loaders[role]
        return loader()


@dataclass
class Workbench:
    """What the run services work with: the store, the retrievers, every component by
    role (``text``, ``image``, ``vision``, ``photos``, ``embedder``, or a new modality's),
    loaded on first use, and the engine's defaults."""

    store: ContextStore
    retrievers: Retrievers
    load: Callable[[str], Any]
    generation: GenerationSettings
    prompt_tokens: int = 1024
    stale_adapters: str = "serve"  # what text strategies do with a stale adapter (config)

    def tools(self, generation: GenerationSettings | None = None, sampling: Any = None) -> Tools:
        return Tools(
            self.store,
            self.retrievers,
            lambda: self.load("text"),
            generation or self.generation,
            self.prompt_tokens,
            lambda: self.load("image"),
            sampling,
            self.load,
            self.stale_adapters,
        )


@dataclass(frozen=True)
class Finished:
    """One request run through its modality: what its output and result are made of."""

    request: Any
    plan: Any
    executed: Executed
    output_id: str | None
    media: list[Path]
    record: dict[str, Any]
    modality: str


Executor = Callable[[Any, Sequence[Any], Any, Sequence[TextSink | None] | None], list[Executed]]


def _plain_check(bench: Workbench, request: Any) -> Any:
    return request


def _plain_prepare(strategy: Any, requests: list[Any], tools: Any) -> list[Any]:
    return list(strategy.prepare(requests, tools))


def _no_settings_check(bench: Workbench, settings: Any) -> None:
    return None


def _plain_record(bench: Workbench, request: Any, plan: Any, executed: Executed) -> dict[str, Any]:
    return {**plan.provenance.as_dict(), "details": plan.details}


def _generation(done: Finished) -> Generation:
    plan, request = done.plan, done.request
    return Generation(
        output_id=done.output_id,
        user_id=request.user_id,
        strategy=request.strategy,
        text=done.executed.text,
        provenance=plan.provenance,
        prompt=getattr(plan, "chat", None) or [],
        details=plan.details,
        modality=done.modality,
        media=done.media,
    )


@dataclass(frozen=True)
class ModalitySpec:
    name: str
    request_type: type
    model_role: str  # the component that executes its plans
    settings_type: type  # its decoding or sampling settings
    execute: Executor
    tools: Callable[[Workbench, Any], Any] = lambda bench, settings: bench.tools(settings)
    check: Callable[[Workbench, Any], Any] = _plain_check  # the request, completed (or refused)
    record: Callable[[Workbench, Any, Any, Executed], dict[str, Any]] = _plain_record
    result: Callable[[Finished], Any] = _generation
    default_settings: Callable[[Workbench], Any] = field(default=lambda bench: bench.generation)
    # The strategy's plans for a batch (the text modality adds each request's earlier turns).
    prepare: Callable[[Any, list[Any], Any], list[Any]] = _plain_prepare
    # The decoding or sampling settings refused before anything runs, when impossible.
    check_settings: Callable[[Workbench, Any], None] = _no_settings_check
    batch_size: int = 16  # requests prepared and executed together
    # The model loads before the strategies prepare (which may load the text model): an
    # image model that cannot load fails before a text model was loaded for nothing.
    model_first: bool = False
    # How its model is had (default: the component of ``model_role``); a modality whose
    # model is made of other roles' components (a post: the text and the image model).
    model: Callable[[Workbench], Any] | None = None

    def load_model(self, bench: Workbench) -> Any:
        return self.model(bench) if self.model else bench.load(self.model_role)


_MODALITIES: dict[str, ModalitySpec] = {}


def register_modality(spec: ModalitySpec) -> ModalitySpec:
    if spec.name in _MODALITIES:
        raise ValueError(f"a modality {spec.name!r} is registered already")
    if any(m.request_type is spec.request_type for m in _MODALITIES.values()):
        raise ValueError(f"{spec.request_type.__name__} belongs to another modality already")
    _MODALITIES[spec.name] = spec
    return spec


def unregister_modality(name: str) -> None:
    """Remove a modality (a plugin unloaded, a test's own modality after the test)."""
    _MODALITIES.pop(name, None)


def modality_names() -> list[str]:
    return list(_MODALITIES)


def get_modality(name: str) -> ModalitySpec:
    try:
        return _MODALITIES[name]
    except KeyError:
        known = ", ".join(_MODALITIES)
        raise InvalidRequest(f"unknown modality {name!r}; choose from {known}") from None


def build_request(
    modality: str,
    user_id: str,
    instruction: str,
    strategy: str | None = None,
    *,
    common: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """A request of ``modality`` from flags or a request body. ``common``: settings the
    front end always has (k, retriever, query), used where the request type has them;
    ``options``: the modality's own fields, each of which it must have."""
    from dataclasses import fields

    spec = get_modality(modality)
    names = {f.name for f in fields(spec.request_type)} - {"user_id", "instruction"}
    unknown = sorted(set(options or {}) - names)
    if unknown:
        known = ", ".join(sorted(names))
        raise InvalidRequest(f"{modality} requests take no {', '.join(unknown)}; they take {known}")
    values = {k: v for k, v in (common or {}).items() if k in names and v is not None}
    hints = get_type_hints(spec.request_type)
    for key, value in (options or {}).items():
        if value is not None:
            values[key] = _typed(key, value, hints.get(key))
    if strategy is not None:
        values["strategy"] = strategy
    try:
        return spec.request_type(user_id=user_id, instruction=instruction, **values)
    except TypeError as error:
        raise InvalidRequest(f"{modality} request: {error}") from None


def _typed(name: str, value: Any, hint: Any) -> Any:
    """A flag's text as the field's type (``--option width=5`` for an ``int`` field)."""
    kinds = [k for k in (get_args(hint) or (hint,)) if k in (int, float, bool)]
    if not isinstance(value, str) or not kinds:
        return value
    kind = kinds[0]
    try:
        if kind is bool:
            return {"true": True, "false": False, "1": True, "0": False}[value.lower()]
        return kind(value)
    except (KeyError, ValueError):
        raise InvalidRequest(f"{name}: expected {kind.__name__}, got {value!r}") from None


def modality_of(request: Any) -> ModalitySpec:
    for spec in _MODALITIES.values():
        if type(request) is spec.request_type:
            return spec
    raise InvalidRequest(f"no modality takes a {type(request).__name__}")


# -- text -------------------------------------------------------------------------------
def _text_check(bench: Workbench, request: TextRequest) -> TextRequest:
    for message in request.history:
        if message.role not in ("user", "assistant"):
            raise InvalidRequest(
                f"earlier turns are the user's or the assistant's, not {message.role!r}"
            )
    return request


def _text_settings_check(bench: Workbench, settings: GenerationSettings) -> None:
    """A reply length that leaves the prompt no room in the model's context is refused
    (rather than cutting the prompt to nothing)."""
    model = bench.load("text")
    most = model.context_length - template_tokens(model) - 1
    if settings.max_new_tokens > most:
        raise InvalidRequest(
            f"max new tokens {settings.max_new_tokens} leaves no room for the prompt in the "
            f"model's context of {model.context_length} tokens; ask for at most {most}"
        )


def _text_record(
    bench: Workbench, request: TextRequest, plan: TextPlan, executed: Executed
) -> dict[str, Any]:
    return {**plan.provenance.as_dict(), "k": request.k, "details": plan.details}


# -- images -----------------------------------------------------------------------------
def _image_check(bench: Workbench, request: ImageRequest) -> ImageRequest:
    """``subject``: the user's subject is found (named, or mentioned in the instruction)
    before a pipeline loads."""
    if request.strategy == "subject":
        from pgen.personalize.subject import pick_subject

        try:
            pick_subject(bench.store, request)
        except ValueError as error:
            raise InvalidRequest(str(error)) from None
    return request


def _image_record(
    bench: Workbench, request: ImageRequest, plan: ImagePlan, executed: Executed
) -> dict[str, Any]:
    return {**plan.provenance.as_dict(), **plan.details, "prompt": plan.prompt}


def _image_result(done: Finished) -> ImageGeneration:
    assert done.output_id is not None  # image outputs are always saved
    details = {**done.plan.details, "images": list(map(str, done.media))}
    return ImageGeneration(
        done.output_id,
        done.request.user_id,
        done.request.strategy,
        done.plan.prompt,
        done.media,
        done.plan.provenance,
        details,
    )


# -- vision: requests that carry a photo --------------------------------------------------
def _vision_check(bench: Workbench, request: AnswerRequest) -> AnswerRequest:
    from pgen.models.image_input import open_image

    if request.k < 1:
        raise InvalidRequest(f"k must be at least 1, got {request.k}")
    photos = bench.load("photos")
    image = open_image(request.image_path, photos.allowed, denied=[bench.store.artifacts_root])
    return replace(request, image=image)


def _vision_tools(bench: Workbench, settings: Any) -> VisionTools:
    from pgen.models.executors import soft_token_model
    from pgen.training.concept_tokens import learned_concepts

    photos = bench.load("photos")

    def soft() -> Any:
        return soft_token_model(bench.load("vision"))

    return VisionTools(
        memory=photos.memory,
        query_vector=photos.query_vector,
        concept_tokens=lambda user_id: learned_concepts(bench.store, user_id, soft().name),
        placeholder=lambda: soft().placeholder,
        people=photos.people_in,
    )


def _vision_record(
    bench: Workbench, request: AnswerRequest, plan: VisionPlan, executed: Executed
) -> dict[str, Any]:
    embedder = bench.load("photos").embedder.model_id
    return {
        **plan.provenance.as_dict(),
        **plan.details,
        "image": request.image_path,
        "embedder": embedder,
    }


def _answer(done: Finished) -> Answer:
    assert done.output_id is not None
    return Answer(done.output_id, done.executed.text, done.request.strategy, done.record)


def register_builtin_modalities() -> None:
    if _MODALITIES:
        return
    register_modality(
        ModalitySpec(
            "text",
            TextRequest,
            "text",
            GenerationSettings,
            execute_text,
            check=_text_check,
            record=_text_record,
            prepare=prepare_text,  # the strategy's plan, earlier turns, stated preferences
            check_settings=_text_settings_check,
        )
    )
    register_modality(
        ModalitySpec(
            "image",
            ImageRequest,
            "image",
            ImageGenerationSettings,
            execute_image,
            tools=lambda bench, sampling: bench.tools(sampling=sampling),
            record=_image_record,
            check=_image_check,
            result=_image_result,
            default_settings=lambda bench: None,
            batch_size=1,
            model_first=True,
        )
    )
    register_modality(
        ModalitySpec(
            "vision",
            AnswerRequest,
            "vision",
            GenerationSettings,
            execute_vision,
            tools=_vision_tools,
            check=_vision_check,
            record=_vision_record,
            result=_answer,
            batch_size=1,
        )
    )


register_builtin_modalities()

# Modalities in modules of their own (they read this one): registered once it is complete.
from pgen.run import media_modalities as _media  # noqa: E402, F401
from pgen.run.speech import register_speech  # noqa: E402

register_speech()
