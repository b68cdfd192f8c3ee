"""The one place components are built from the config: store, text, image and embedding
models, each named by a ``{provider, settings}`` spec (as Mem0 configures its backends).

A config value is either a plain string, read the way the README's settings table says
("smollm2", a folder, a ``.gguf``, a Hub id, ``openai:MODEL@URL``), or a TOML table::

    [text_model]
    provider = "openai"
    settings = { model = "llama-3-8b", base_url = "http://127.0.0.1:8000" }

Models are built lazily (on first use) and once, under a lock, so a command that never
generates never loads a model, and threads of one engine share one copy. The PyTorch
thread policy is applied here, once, for every component.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from pgen.config import DEFAULT_TEXT_MODEL, Config
from pgen.context.base import ContextStore

if TYPE_CHECKING:
    from pgen.models.base import Embedder, TextModel
    from pgen.models.image import DiffusersImageModel
    from pgen.usermodel.photos import PhotoMemory

T = TypeVar("T")


@dataclass(frozen=True)
class ComponentSpec:
    provider: str
    settings: Mapping[str, Any] = field(default_factory=dict)


def text_model_spec(value: str | Mapping[str, Any]) -> ComponentSpec:
    if isinstance(value, Mapping):
        return _table("text_model", value)
    if value.startswith("openai:"):
        model, sep, base_url = value.removeprefix("openai:").partition("@")
        if not sep or not model or not base_url:
            raise ValueError(f"text_model: expected openai:MODEL@BASE_URL, got {value!r}")
        return ComponentSpec("openai", {"model": model, "base_url": base_url})
    if value == DEFAULT_TEXT_MODEL:
        return ComponentSpec("smollm2")
    return ComponentSpec("transformers", {"path": value})


def embedder_spec(value: str | Mapping[str, Any]) -> ComponentSpec:
    if isinstance(value, Mapping):
        return _table("embed_model", value)
    return ComponentSpec("sentence-transformers", {"path": value})


def image_model_spec(value: str | Mapping[str, Any]) -> ComponentSpec:
    if isinstance(value, Mapping):
        return _table("image_model", value)
    return ComponentSpec("diffusers", {"path": value})


def _table(kind: str, value: Mapping[str, Any]) -> ComponentSpec:
    unknown = set(value) - {"provider", "settings"}
    if "provider" not in value or unknown:
        raise ValueError(f"{kind}: a table needs 'provider' and optional 'settings', got {value}")
    settings = value.get("settings", {})
    if not isinstance(settings, Mapping):
        raise ValueError(f"{kind}.settings must be a table")
    return ComponentSpec(str(value["provider"]), dict(settings))


def check_local_model(kind: str, value: str) -> None:
    """A value that looks like a path (./x, /x, ~/x) must exist: say "no such folder" before
    any model loads, instead of a Hub error about an invalid repository name."""
    looks_local = value.startswith(("/", "./", "../", "~")) or value.endswith(".gguf")
    if looks_local and not Path(value).expanduser().exists():
        raise FileNotFoundError(f"{kind} {value!r}: no such file or folder")


def check_components(config: Config) -> None:
    """Every configured model that names a local path must exist: checked when an engine
    opens, before any model loads (a typo fails in milliseconds, not after a model load)."""
    for kind, spec in (
        ("text_model", text_model_spec(config.text_model)),
        ("embed_model", embedder_spec(config.embed_model)),
    ):
        if "path" in spec.settings:
            check_local_model(kind, str(spec.settings["path"]))


def build_store(config: Config) -> ContextStore:
    return store_at(config.store_path)


def store_at(path: Path) -> ContextStore:
    """The embedded store in the file ``path``: the one place that names its class (a
    benchmark's scratch store comes from here too)."""
    from pgen.context.store import SQLiteStore

    return SQLiteStore(path)


def build_text_model(config: Config, batch_size: int | None = None) -> TextModel:
    """``batch_size``: rows per model call of a local model, unless its settings table
    names one (the service passes its gathering size, so a gathered batch is one call)."""
    from pgen.models.http import OpenAITextModel
    from pgen.models.text import load_text_model

    spec = text_model_spec(config.text_model)
    if spec.provider == "openai":
        return OpenAITextModel(base_url=spec.settings["base_url"], model=spec.settings["model"])
    options = dict(spec.settings)
    if batch_size is not None:
        options.setdefault("batch_size", batch_size)
    if spec.provider == "smollm2":
        return load_text_model(DEFAULT_TEXT_MODEL, config, **options)
    if spec.provider == "transformers":
        path = str(options.pop("path"))
        check_local_model("text_model", path)
        return load_text_model(path, config, **options)
    raise ValueError(
        f"text_model: unknown provider {spec.provider!r} (smollm2, transformers, openai)"
    )


def build_embedder(config: Config) -> Embedder:
    from pgen.models.embedding import SentenceEmbedder

    spec = embedder_spec(config.embed_model)
    if spec.provider != "sentence-transformers":
        raise ValueError(f"embed_model: unknown provider {spec.provider!r} (sentence-transformers)")
    check_local_model("embed_model", str(spec.settings["path"]))
    return SentenceEmbedder(str(spec.settings["path"]), device=config.device)


def build_image_model(settings: Config, **overrides: Any) -> DiffusersImageModel:
    """``overrides``: per-command settings (``model``, ``device``, ``dtype``, ``config``: the
    pipeline folder of a single-file model's family)."""
    from pgen.models.image import load_image_model

    spec = image_model_spec(overrides.pop("model", None) or settings.image_model)
    if spec.provider != "diffusers":
        raise ValueError(f"image_model: unknown provider {spec.provider!r} (diffusers)")
    options = {**spec.settings, **{k: v for k, v in overrides.items() if v is not None}}
    path = str(options.pop("path"))
    check_local_model("image_model", path)
    options.setdefault("device", settings.device)
    return load_image_model(path, **options)


def build_vision_model(config: Config) -> Any:
    """The configured vision-language model (none installs offline: ``vision_model`` names
    one: an HF id, a folder, or openai:MODEL@URL)."""
    from pgen.models.vision import load_vision_model

    if not config.vision_model:
        raise ValueError(
            "no vision-language model: set vision_model (PGEN_VISION_MODEL or "
            "--vision-model: an HF id, a folder, or openai:MODEL@URL)"
        )
    check_local_model("vision_model", config.vision_model)
    return load_vision_model(config.vision_model, device=config.device)


def build_photos(config: Config, store: ContextStore) -> PhotoMemory:
    """The photo side of ``store``: the configured image embedder, images allowed from the
    media roots (``$PGEN_MEDIA_ROOT``, else the working directory)."""
    from pgen.context.media import MEDIA_ROOT_ENV
    from pgen.models.image_embedding import load_image_embedder
    from pgen.usermodel.photos import PhotoMemory

    roots = [Path(p) for p in os.environ.get(MEDIA_ROOT_ENV, "").split(os.pathsep) if p]

    def image_embedder() -> Any:
        apply_thread_policy(config)
        return load_image_embedder(config.image_embedder, config.device)

    embedder: Lazy[Any] = Lazy(image_embedder)
    return PhotoMemory(store, embedder, allowed=roots or [Path.cwd()])


def component_loader(config: Config) -> Callable[..., Any]:
    """``load(role, *args)``: the configured component of ``role`` (``text``, ``embedder``,
    ``image``, ``vision``, ``photos`` with its store, or any role registered with
    ``register_provider``), built now, with the thread policy applied first."""
    builders: dict[str, Callable[..., Any]] = {
        "text": build_text_model,
        "embedder": build_embedder,
        "image": build_image_model,
        "vision": build_vision_model,
        "photos": build_photos,
    }

    def load(role: str, *args: Any) -> Any:
        apply_thread_policy(config)
        if role in builders:
            return builders[role](config, *args)
        return build(role, config)

    return load


def _is_builder(value: object) -> bool:
    return (
        inspect.isroutine(value)
        or inspect.isclass(value)
        or isinstance(value, functools.partial | Lazy)  # another Lazy: share its one copy
    )


class Lazy(Generic[T]):
    """A component built on first use, once, even when threads ask at the same time."""

    def __init__(self, build: Callable[[], T] | T) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()
        # A builder is a function (or a class, or a partial); anything else is the component
        # itself, even when it is callable (a torch module is).
        if not _is_builder(build):
            self._value = cast(T, build)

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def __call__(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    build = self._build
                    assert callable(build)
                    self._value = build()
        return self._value


def apply_thread_policy(config: Config) -> None:
    """One thread policy for every component (see ``Config.torch_threads``); torch is only
    imported when a model is about to load."""
    config.apply_threads()


# -- provider tables: a role's components by name -----------------------------------------
_PROVIDERS: dict[str, dict[str, Callable[[Config], Any]]] = {}


def register_provider(role: str, name: str, builder: Callable[[Config], Any]) -> None:
    """``builder(config)`` makes the ``role`` component called ``name``; the first one
    registered for a role is its default."""
    table = _PROVIDERS.setdefault(role, {})
    if name in table:
        raise ValueError(f"a {role} provider {name!r} is registered already")
    table[name] = builder


def build(role: str, config: Config, name: str | None = None) -> Any:
    table = _PROVIDERS.get(role)
    if not table:
        raise ValueError(f"no {role} component is configured or registered")
    chosen = name or next(iter(table))
    if chosen not in table:
        raise ValueError(f"unknown {role} provider {chosen!r}; choose from {', '.join(table)}")
    return table[chosen](config)
