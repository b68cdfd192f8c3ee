"""How a config value names a component: a plain string read the way the README's
settings table says, or a ``{provider, settings}`` table, as a ``ComponentSpec``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pgen.config import DEFAULT_TEXT_MODEL, SQLITE_URL, Config


@dataclass(frozen=True)
class ComponentSpec:
    provider: str
    settings: Mapping[str, Any] = field(default_factory=dict)


def _table(kind: str, value: Mapping[str, Any]) -> ComponentSpec:
    unknown = set(value) - {"provider", "settings"}
    if "provider" not in value or unknown:
        raise ValueError(f"{kind}: a table needs 'provider' and optional 'settings', got {value}")
    settings = value.get("settings", {})
    if not isinstance(settings, Mapping):
        raise ValueError(f"{kind}.settings must be a table")
    return ComponentSpec(str(value["provider"]), dict(settings))


def _openai(kind: str, value: str) -> ComponentSpec:
    model, sep, base_url = value.removeprefix("openai:").partition("@")
    if not sep or not model or not base_url:
        raise ValueError(f"{kind}: expected openai:MODEL@BASE_URL, got {value!r}")
    return ComponentSpec("openai", {"model": model, "base_url": base_url})


def text_model_spec(value: str | Mapping[str, Any]) -> ComponentSpec:
    if isinstance(value, Mapping):
        return _table("text_model", value)
    if value.startswith("openai:"):
        return _openai("text_model", value)
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


def vision_model_spec(value: str | Mapping[str, Any]) -> ComponentSpec:
    if isinstance(value, Mapping):
        return _table("vision_model", value)
    if not value:
        raise ValueError(
            "no vision-language model: set vision_model (PGEN_VISION_MODEL or "
            "--vision-model: an HF id, a folder, or openai:MODEL@URL)"
        )
    if value.startswith("openai:"):
        return _openai("vision_model", value)
    return ComponentSpec("transformers", {"path": value})


def image_embedder_spec(value: str | Mapping[str, Any]) -> ComponentSpec:
    from pgen.models.image_embedding import DEFAULT_IMAGE_EMBEDDER

    if isinstance(value, Mapping):
        return _table("image_embedder", value)
    if value == DEFAULT_IMAGE_EMBEDDER:
        return ComponentSpec(DEFAULT_IMAGE_EMBEDDER)
    if value.endswith((".pth", ".pt")) and Path(value).is_file():
        return ComponentSpec(DEFAULT_IMAGE_EMBEDDER, {"weights": value})
    return ComponentSpec("transformers", {"path": value})


def store_spec(value: Path | str | Mapping[str, Any] | None, config: Config) -> ComponentSpec:
    """A path (SQLite, as ever), a URL whose scheme names the provider (``sqlite:///PATH``;
    another scheme's builder gets ``url``), or a ``{provider, settings}`` table."""
    if isinstance(value, Mapping):
        return _table("store", value)
    if isinstance(value, str) and "://" in value and not value.startswith(SQLITE_URL):
        return ComponentSpec(value.partition("://")[0], {"url": value})
    return ComponentSpec("sqlite", {"path": replace(config, store=value).store_path})


_SPECS: dict[str, Callable[[Any], ComponentSpec]] = {
    "text": text_model_spec,
    "image": image_model_spec,
    "vision": vision_model_spec,
    "embedder": embedder_spec,
    "image_embedder": image_embedder_spec,
}
