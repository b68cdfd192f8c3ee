"""The one place components are built from the config: a provider table per role (store,
text, image, vision, embedder, image_embedder, recommender, retriever), each provider named
by a ``{provider, settings}`` spec (as Mem0 configures its backends).

A config value is either a plain string, read the way the README's settings table says
("smollm2", a folder, a ``.gguf``, a Hub id, ``openai:MODEL@URL``; for the store a SQLite
path or a URL such as ``sqlite:///pgen.sqlite``), or a TOML table::

    [text_model]
    provider = "openai"
    settings = { model = "llama-3-8b", base_url = "http://127.0.0.1:8000" }

A new backend is one ``register_provider(role, name, builder)`` call; ``build(role,
config_or_spec)`` builds any role's component. Builders are called as ``builder(config,
**settings)``. The ``recommender`` and ``retriever`` tables are the recommender and
retriever registries themselves (``pgen.recommend.recommenders.REGISTRY``,
``pgen.usermodel.retrievers``), so nothing is listed twice.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from pgen.config import Config
from pgen.context.base import ContextStore
from pgen.errors import InvalidRequest
from pgen.factory.specs import _SPECS, _table, image_model_spec, store_spec
from pgen.factory.specs import ComponentSpec as ComponentSpec
from pgen.factory.specs import embedder_spec as embedder_spec
from pgen.factory.specs import image_embedder_spec as image_embedder_spec
from pgen.factory.specs import text_model_spec as text_model_spec
from pgen.factory.specs import vision_model_spec as vision_model_spec

if TYPE_CHECKING:
    from pgen.models.base import Embedder, TextModel
    from pgen.models.image import DiffusersImageModel
    from pgen.usermodel.photo_memory import PhotoMemory

T = TypeVar("T")


Builder = Callable[..., Any]  # builder(config, **settings) -> the component

# The roles and the config setting each is read from (None: named at the call, not in
# the config: a recommender by `--model`, a retriever by `--retriever`).
ROLES: dict[str, str | None] = {
    "store": "store",
    "text": "text_model",
    "image": "image_model",
    "vision": "vision_model",
    "embedder": "embed_model",
    "image_embedder": "image_embedder",
    "recommender": None,
    "retriever": None,
}
_PROVIDERS: dict[str, dict[str, Builder]] = {
    role: {} for role in ROLES if role not in ("recommender", "retriever")
}


def register_role(role: str, setting: str | None = None) -> None:
    """A new role (a new modality's model): its providers are registered like any other,
    and the config names one under ``setting`` (None: the first registered is used)."""
    ROLES.setdefault(role, setting)
    _PROVIDERS.setdefault(role, {})


def _role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown component role {role!r}; roles: {', '.join(ROLES)}")
    return role


def register_provider(role: str, name: str, builder: Builder) -> Builder:
    """Make ``name`` a provider of ``role``: ``build(role, {"provider": name, ...})`` calls
    ``builder(config, **settings)``. A recommender's builder is its class (a subclass of
    ``TrainableRecommender``); a retriever's is ``factory(retrievers)`` (see
    ``pgen.usermodel.retrievers.register_retriever``). Registering a name again replaces
    it."""
    if _role(role) == "recommender":
        from pgen.recommend.recommenders import REGISTRY

        if not isinstance(builder, type):
            raise TypeError("a recommender provider is a TrainableRecommender subclass")
        REGISTRY[name] = builder
    elif role == "retriever":
        from pgen.usermodel.retrievers import register_retriever

        register_retriever(name, builder)
    else:
        _PROVIDERS[role][name] = builder
    return builder


def unregister_role(role: str) -> None:
    """Remove a role added with ``register_role`` and its providers."""
    if role in _PROVIDERS and ROLES.get(role) is None and role not in ("recommender", "retriever"):
        ROLES.pop(role, None)
        _PROVIDERS.pop(role, None)


def providers(role: str) -> list[str]:
    """The registered provider names of ``role``, in registration order."""
    if _role(role) == "recommender":
        import pgen.recommend.recommenders as recommenders  # importing registers them all

        return list(recommenders.REGISTRY)
    if role == "retriever":
        from pgen.usermodel.retrievers import RETRIEVERS

        return list(RETRIEVERS)
    return list(_PROVIDERS[role])


def component_spec(role: str, value: Any, config: Config | None = None) -> ComponentSpec:
    """The spec a config value names for ``role`` (a string, a path, a table or a spec)."""
    if isinstance(value, ComponentSpec):
        return value
    if _role(role) == "store":
        return store_spec(value, config or Config())
    if role in _SPECS:
        return _SPECS[role](value)
    if isinstance(value, Mapping):
        return _table(role, value)
    return ComponentSpec(str(value))


def build(
    role: str,
    config_or_spec: Config | ComponentSpec | Mapping[str, Any] | str | Path | None,
    config: Config | None = None,
    /,
    **options: Any,
) -> Any:
    """The component of ``role`` that a config (its setting for the role) or a spec names,
    built by its provider with the spec's settings and ``options`` on top (``config``:
    the settings a spec is built under, such as the device; default: the defaults). An
    unknown provider is a one-line error naming the registered ones."""
    if isinstance(config_or_spec, Config):
        config = config_or_spec
        setting = ROLES[_role(role)]
        value: Any = None
        if setting is not None:
            value = getattr(config, setting)
        elif _PROVIDERS.get(role):  # a role the config does not name: its first provider
            value = next(iter(_PROVIDERS[role]))
        else:
            raise ValueError(f"{role}: not named by the config; pass its spec")
    else:
        value = config_or_spec
    config = config or Config()
    spec = component_spec(role, value, config)
    settings = {**spec.settings, **options}
    if role == "recommender":
        from pgen.recommend.recommenders import build as build_recommender

        _check_provider(role, spec.provider)
        return build_recommender(spec.provider, **settings)
    if role == "retriever":
        from pgen.usermodel.retrievers import Retrievers

        _check_provider(role, spec.provider)
        embedder = settings.pop("embedder", None) or (lambda: build("embedder", config))
        return Retrievers(settings["store"], embedder).get(spec.provider)
    _check_provider(role, spec.provider)
    return _PROVIDERS[role][spec.provider](config, **settings)


def _check_provider(role: str, name: str) -> None:
    known = providers(role)
    if name not in known:
        setting = ROLES[role] or role
        raise ValueError(
            f"{setting}: unknown provider {name!r}; registered: {', '.join(known) or 'none'}"
        )


def check_local_model(kind: str, value: str) -> None:
    """A value that looks like a path (./x, /x, ~/x) must exist: say "no such folder" before
    any model loads, instead of a Hub error about an invalid repository name."""
    looks_local = value.startswith(("/", "./", "../", "~")) or value.endswith(".gguf")
    if looks_local and not Path(value).expanduser().exists():
        raise FileNotFoundError(f"{kind} {value!r}: no such file or folder")


def check_image_model(value: str | Mapping[str, Any]) -> None:
    """The diffusers image model is there to load, or an error that says none is installed
    and how to point at one, before anything loads."""
    spec = image_model_spec(value)
    if spec.provider != "diffusers" or "path" not in spec.settings:
        return
    check_diffusers_weights(
        "image_model",
        str(spec.settings["path"]),
        "no image model is installed",
        "a diffusers pipeline folder or a .safetensors checkpoint with --image-model PATH, "
        "or set image_model (PGEN_IMAGE_MODEL)",
    )


def check_diffusers_weights(setting: str, path: str, missing: str, fix: str) -> None:
    """A diffusers pipeline named by ``path`` (a folder or a Hub id) can load: no diffusion
    weights install offline, so an id that is not in the Hub's cache cannot load while the
    Hub is offline; say so, and ``fix``, before anything loads."""
    check_local_model(setting, path)
    if Path(path).expanduser().exists():
        return
    from huggingface_hub import constants, try_to_load_from_cache

    if not constants.HF_HUB_OFFLINE:
        return  # the Hub downloads it
    try:
        cached = try_to_load_from_cache(path, "model_index.json")
    except ValueError:  # not a repository id at all
        cached = None
    if isinstance(cached, str):
        return
    raise InvalidRequest(
        f"{missing}: {path!r} is not in the Hugging Face cache and the Hub is offline (no "
        f"diffusion weights install offline). Point at {fix}"
    )


def check_components(config: Config) -> None:
    """Every configured model that names a local path must exist: checked when an engine
    opens, before any model loads (a typo fails in milliseconds, not after a model load)."""
    for kind, spec in (
        ("text_model", text_model_spec(config.text_model)),
        ("embed_model", embedder_spec(config.embed_model)),
    ):
        if "path" in spec.settings:
            check_local_model(kind, str(spec.settings["path"]))


# -- the build_* functions: thin calls into build -------------------------------------------
def build_store(config: Config) -> ContextStore:
    return cast("ContextStore", build("store", config))


def store_at(path: Path) -> ContextStore:
    """The embedded store in the file ``path`` (a benchmark's scratch store)."""
    return cast("ContextStore", build("store", ComponentSpec("sqlite", {"path": path})))


def build_text_model(config: Config, batch_size: int | None = None) -> TextModel:
    """``batch_size``: rows per model call of a local model, unless its settings table
    names one (the service passes its gathering size, so a gathered batch is one call)."""
    spec = text_model_spec(config.text_model)
    settings = dict(spec.settings)
    if batch_size is not None and spec.provider != "openai":
        settings.setdefault("batch_size", batch_size)
    return cast("TextModel", build("text", ComponentSpec(spec.provider, settings), config))


def build_embedder(config: Config) -> Embedder:
    return cast("Embedder", build("embedder", config))


def build_image_model(settings: Config, **overrides: Any) -> DiffusersImageModel:
    """``overrides``: per-command settings (``model``, ``device``, ``dtype``, ``config``: the
    pipeline folder of a single-file model's family)."""
    value = overrides.pop("model", None) or settings.image_model
    options = {k: v for k, v in overrides.items() if v is not None}
    return cast("DiffusersImageModel", build("image", value, settings, **options))


def build_vision_model(config: Config, **options: Any) -> Any:
    """The configured VLM, or None when none is (``pgen ask`` then answers with the
    concepts recognized in the photo)."""
    if not config.vision_model:
        return None
    return build("vision", config, **options)


def build_image_embedder(config: Config, **options: Any) -> Any:
    return build("image_embedder", config, **options)


def build_photos(config: Config, store: ContextStore) -> PhotoMemory:
    """The photo side of ``store``: the configured image embedder, images allowed from the
    media roots (``$PGEN_MEDIA_ROOT``, else the working directory)."""
    from pgen.context.media import MEDIA_ROOT_ENV
    from pgen.usermodel.photo_memory import PhotoMemory

    roots = [Path(p) for p in os.environ.get(MEDIA_ROOT_ENV, "").split(os.pathsep) if p]

    def image_embedder() -> Any:
        apply_thread_policy(config)
        return build_image_embedder(config)

    embedder: Lazy[Any] = Lazy(image_embedder)
    faces: Lazy[Any] = Lazy(lambda: build("face_embedder", config))
    return PhotoMemory(store, embedder, allowed=roots or [Path.cwd()], face_embedder=faces)


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


# Today's providers register themselves (after everything they call is defined).
from pgen.factory import builtin as _builtin  # noqa: E402, F401
