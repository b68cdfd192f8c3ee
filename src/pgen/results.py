"""What the Engine answers with: every result type, one per verb (and per modality for
``generate``), in one module."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgen.components import Provenance
from pgen.context.base import StoredOutput
from pgen.context.records import (
    Document,
    Feedback,
    Interaction,
    Item,
    Preference,
    Subject,
    User,
)
from pgen.models.base import Chat
from pgen.usermodel.photo_memory import PhotoHit, PhotoSearch


@dataclass(frozen=True)
class Generation:
    output_id: str | None  # None when not saved
    user_id: str
    strategy: str
    text: str
    provenance: Provenance
    prompt: Chat
    details: dict[str, Any]
    modality: str = "text"
    media: list[Path] = field(default_factory=list)  # files saved with the output


@dataclass(frozen=True)
class ImageGeneration:
    output_id: str
    user_id: str
    strategy: str
    prompt: str  # what the image model was given
    paths: list[Path]
    provenance: Provenance
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StaleAdapter:
    """A user's adapter behind its data (or trained on another base model): retrain it."""

    user_id: str
    method: str  # lora, dpo
    reason: str


@dataclass(frozen=True)
class UserView:
    """One user's context at a glance: profile, their newest documents, and counts."""

    user: User
    documents: list[Document]  # the newest ``limit``, oldest first
    total_documents: int
    interactions: int
    subjects: list[Subject]
    feedback: int
    outputs: int


@dataclass(frozen=True)
class ArtifactInfo:
    """One of the user's artifacts, by name: what it is and what it applies to (its
    files stay on the server; ``complete`` is False for one whose metadata is missing)."""

    kind: str
    name: str
    complete: bool
    base_model: str | None = None
    created: str | None = None


@dataclass(frozen=True)
class UserExport:
    """Everything stored of one user (``Engine.export_user``): their context, the
    artifacts derived from it, their outputs and the feedback on them."""

    user: User
    documents: list[Document]
    interactions: list[Interaction]
    subjects: list[Subject]
    artifacts: list[ArtifactInfo]
    outputs: list[StoredOutput]
    feedback: list[Feedback]
    preferences: list[Preference] = field(default_factory=list)  # stated ones, with sources


@dataclass(frozen=True)
class SearchHit:
    document: Document
    score: float
    retriever: str


@dataclass(frozen=True)
class TrainResult:
    user_id: str
    method: str
    artifact: Path
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recommendation:
    """One item of a user's ranking (``Engine.recommend``)."""

    item: Item
    score: float
    rank: int


@dataclass(frozen=True)
class Answer:
    """An answer about one of the user's photos (the ``vision`` modality)."""

    output_id: str
    text: str
    strategy: str
    provenance: dict[str, Any]


__all__ = [
    "Answer",
    "ArtifactInfo",
    "Generation",
    "ImageGeneration",
    "PhotoHit",
    "PhotoSearch",
    "Recommendation",
    "SearchHit",
    "TrainResult",
    "UserExport",
    "UserView",
]
