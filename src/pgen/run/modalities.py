"""The modalities ``Engine.generate`` knows, each one entry: its request type, the role of
its model backend, its settings type, the tools its strategies get, its executor, and how
its output is recorded and answered. A new modality is a protocol and a backend (its model),
an executor, strategies registered in ``pgen.personalize.registry``, and one
``register_modality`` call: nothing else changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_type_hints

from pgen.components import (
    Tools,
)
from pgen.config import GenerationSettings
from pgen.context.base import ContextStore
from pgen.errors import InvalidRequest
from pgen.factory import Lazy
from pgen.models.base import TextSink
from pgen.models.executors import Executed
from pgen.results import Generation
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
    # The motion adapters a video request may name: None, any (the CLI, the library); a
    # tuple, only those (a service pins them: config video_motion_adapters).
    motion_adapters: tuple[str, ...] | None = None

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


# The built-in modalities (text, image, vision), then those of modules of their own: each
# module reads this one, so they are imported once it is complete, in this order.
from pgen.run import builtin_modalities as _builtin  # noqa: E402, F401
from pgen.run import media_modalities as _media  # noqa: E402, F401
from pgen.run.speech import register_speech  # noqa: E402

register_speech()
