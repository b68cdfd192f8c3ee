"""Today's providers of every role, registered when ``pgen.factory`` is imported: each
builds its component from ``(config, **settings)``; their model stacks import inside."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgen.config import DEFAULT_TEXT_MODEL, Config
from pgen.factory import check_image_model, check_local_model, register_provider, register_role

if TYPE_CHECKING:
    from pgen.context.base import ContextStore
    from pgen.models.base import Embedder, TextModel
    from pgen.models.image import DiffusersImageModel


def _sqlite(
    config: Config, /, path: str | Path, artifacts: str | Path | None = None
) -> ContextStore:
    from pgen.context.sqlite import SQLiteStore

    root = artifacts or config.artifacts  # a folder apart from the database, when set
    return SQLiteStore(Path(path).expanduser(), artifacts_root=root)


def _postgres(
    config: Config,
    /,
    url: str,
    schema: str = "pgen",
    artifacts: str | Path | None = None,
    pool_size: int = 8,
    scrub: str = "full",
) -> ContextStore:
    """``store = "postgresql://..."`` or ``{provider = "postgres", settings = {url = ...}}``.
    Artifacts stay in a folder (``artifacts``; default ``<home>/artifacts``): on a disk
    every replica shares."""
    from pgen.context.postgres import PostgresStore

    root = artifacts or config.artifacts or config.home / "artifacts"
    return PostgresStore(
        url,
        artifacts_root=Path(root).expanduser(),
        schema=schema,
        pool_size=pool_size,
        scrub=scrub,
    )


def _smollm2(config: Config, /, **options: Any) -> TextModel:
    from pgen.models.text import load_text_model

    return load_text_model(DEFAULT_TEXT_MODEL, config, **options)


def _transformers_text(config: Config, /, path: str, **options: Any) -> TextModel:
    from pgen.models.text import load_text_model

    check_local_model("text_model", str(path))
    return load_text_model(str(path), config, **options)


def _openai_text(config: Config, /, model: str, base_url: str, **_: Any) -> TextModel:
    from pgen.models.http import OpenAITextModel

    return OpenAITextModel(base_url=base_url, model=model)


def _sentence_transformers(config: Config, /, path: str) -> Embedder:
    from pgen.models.embedding import SentenceEmbedder

    check_local_model("embed_model", str(path))
    return SentenceEmbedder(str(path), device=config.device)


def _diffusers(config: Config, /, path: str, **options: Any) -> DiffusersImageModel:
    from pgen.models.image import load_image_model
    from pgen.models.quiet import quiet_third_party

    check_image_model(str(path))
    options.setdefault("device", config.device)
    with quiet_third_party(diffusers=True):  # torchvision's and the Hub's warnings
        return load_image_model(str(path), **options)


def _transformers_vision(config: Config, /, path: str, **options: Any) -> Any:
    from pgen.models.vision import TransformersVisionModel

    check_local_model("vision_model", str(path))
    options.setdefault("device", config.device)
    return TransformersVisionModel(str(path), **options)


def _openai_vision(config: Config, /, model: str, base_url: str) -> Any:
    from pgen.models.vision import OpenAIVisionModel

    return OpenAIVisionModel(base_url, model)


def _efficientnet(config: Config, /, weights: str | None = None, **options: Any) -> Any:
    from pgen.models.image_embedding import EfficientNetEmbedder

    options.setdefault("device", config.device)
    return EfficientNetEmbedder(weights, **options)


def _transformers_image_embedder(config: Config, /, path: str, **options: Any) -> Any:
    from pgen.models.image_embedding import TransformersImageEmbedder

    options.setdefault("device", config.device)
    return TransformersImageEmbedder(str(path), **options)


def _dlib_faces(config: Config, /, detector: str = "hog", **options: Any) -> Any:
    from pgen.models.face import DlibFaceEmbedder

    return DlibFaceEmbedder(detector, **options)


def _torch_faces(config: Config, /, path: str, **options: Any) -> Any:
    from pgen.models.face_torch import TorchFaceEmbedder

    options.setdefault("device", config.device)
    return TorchFaceEmbedder(str(path), **options)


register_role("face_embedder")  # not named by the config: dlib, the first provider
for _role_name, _name, _builder in (
    ("store", "sqlite", _sqlite),
    ("store", "postgres", _postgres),
    ("store", "postgresql", _postgres),  # the URL scheme (postgresql://user@host/db)
    ("text", "smollm2", _smollm2),
    ("text", "transformers", _transformers_text),
    ("text", "openai", _openai_text),
    ("embedder", "sentence-transformers", _sentence_transformers),
    ("image", "diffusers", _diffusers),
    ("vision", "transformers", _transformers_vision),
    ("vision", "openai", _openai_vision),
    ("image_embedder", "efficientnet-lite0", _efficientnet),
    ("image_embedder", "transformers", _transformers_image_embedder),
    ("face_embedder", "dlib", _dlib_faces),
    ("face_embedder", "torch", _torch_faces),
):
    register_provider(_role_name, _name, _builder)

# The speech roles (asr, speech): their specs and providers in their own module.
from pgen.factory import speech as _speech  # noqa: E402

_speech.register()

# The 3d modality's role (shape): its spec and provider in their own module.
from pgen.factory import shape as _shape  # noqa: E402

_shape.register()
