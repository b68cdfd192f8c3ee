"""Request bodies of the REST routes (they make the OpenAPI schema, and fuzzing uses it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pgen.config import settings_from
from pgen.models.base import GenerationSettings

MAX_TEXT = 20_000  # characters of an instruction or a query


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Decoding(Body):
    """Decoding settings over the configured ones (None: the configured value)."""

    max_new_tokens: int | None = Field(None, ge=1, le=1024)
    temperature: float | None = Field(None, ge=0, le=5)
    top_p: float | None = Field(None, gt=0, le=1)
    # The copy guard (models/copy_guard.py); 1 is refused as GenerationSettings refuses it.
    no_copy_ngram_size: int | None = Field(default=None, ge=0, le=64)
    seed: int = Field(0, ge=0, le=2**31 - 1)

    def settings(self, base: GenerationSettings) -> GenerationSettings:
        return settings_from(GenerationSettings, base, self)  # the body's settings on top


class RecordsBody(Body):
    records: list[dict[str, Any]] = Field(max_length=100_000)


class SearchBody(Body):
    query: str = Field(min_length=1, max_length=MAX_TEXT)
    k: int = Field(4, ge=1, le=100)
    retriever: str = "bm25"


class PhotoSearchBody(Body):
    query: str = Field(min_length=1, max_length=MAX_TEXT)  # names the user's people, concepts
    k: int = Field(10, ge=1, le=100)


class GenerateBody(Decoding):
    instruction: str = Field(min_length=1, max_length=MAX_TEXT)
    strategy: str | None = None  # None: the modality's default (text: rag)
    k: int = Field(4, ge=1, le=100)
    retriever: str = "bm25"
    query: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    frame: Literal["auto", "author", "assistant", "voice"] = "auto"  # personalize/frames.py
    save: bool = True
    modality: str = Field("text", min_length=1, max_length=64)
    # The modality's own request fields (a registered modality beyond text).
    options: dict[str, str | int | float | bool | None] = Field(default_factory=dict, max_length=32)


class CompareBody(Decoding):
    """The same instruction under several strategies (the web page's side by side)."""

    instruction: str = Field(min_length=1, max_length=MAX_TEXT)
    strategies: list[str] = Field(default_factory=lambda: ["none", "rag"], min_length=1)
    k: int = Field(4, ge=1, le=100)
    retriever: str = "bm25"
    frame: Literal["auto", "author", "assistant", "voice"] = "auto"


class ImageBody(Body):
    instruction: str = Field(min_length=1, max_length=MAX_TEXT)
    strategy: str = "none"
    subject: str | None = Field(None, min_length=1, max_length=256)
    method: str | None = Field(None, min_length=1, max_length=64)
    keywords_weight: float = Field(0.3, ge=0, le=1)
    steps: int = Field(30, ge=1, le=200)
    guidance_scale: float = Field(7.5, ge=0, le=50)
    height: int | None = Field(None, ge=16, le=2048)
    width: int | None = Field(None, ge=16, le=2048)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    images_per_prompt: int = Field(1, ge=1, le=8)


class FeedbackBody(Body):
    """Thumbs on an output (``output_id``) or on a recommended item (``item_id``), or a
    chosen/rejected pair."""

    output_id: str | None = Field(None, min_length=1, max_length=256)
    item_id: str | None = Field(None, min_length=1, max_length=256)
    thumbs: Literal[-1, 1] | None = None
    prompt: str | None = Field(None, max_length=MAX_TEXT)
    chosen: str | None = Field(None, max_length=MAX_TEXT)
    rejected: str | None = Field(None, max_length=MAX_TEXT)


class TrainBody(Body):
    method: str = Field(min_length=1, max_length=64)
    subject: str | None = Field(None, min_length=1, max_length=256)
    cohort: list[str] = Field(default_factory=list, max_length=1000)
    steps: int | None = Field(
        None, ge=1, le=100_000, description="optimizer steps (stoppable trainers)"
    )


class RecommenderBody(Body):
    model: str = Field("pop", min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


class SettingsBody(Body):
    memory: bool | None = None


class KeyBody(Body):
    tenant: str | None = Field(None, description="the key's tenant; omitted: an admin key")
    name: str = Field("", max_length=200)
