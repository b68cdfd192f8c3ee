"""The store protocols: everything strategies, recommenders, trainers and the engine need.

Three narrow protocols, each a part a backend implements and a caller may ask for alone:
``RecordStore`` (users, their context, the shared catalog, the change feed),
``DerivedStore`` (what is computed from the context: vectors, summaries, outputs, the
pruning of the change feed) and ``ArtifactStore`` (folders of trained artifacts, under a
root configured apart from the database). ``ContextStore`` is their combination plus
forgetting and lifetime, and the store type the code above ``pgen.context`` names. The
embedded SQLite store (``pgen.context.sqlite.SQLiteStore``) implements it; a Postgres
store is a new module implementing the same methods. Every method that reads a user's data takes the
``user_id`` and scopes the query by it inside the store: one user's rows never leave the
store in another user's request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from pgen.context.records import (
    Document,
    Feedback,
    Interaction,
    Item,
    Preference,
    Record,
    Subject,
    User,
)
from pgen.errors import NotFound


class UserNotFoundError(NotFound):
    def __str__(self) -> str:
        return f"no user {self.args[0]!r} in the store"


class OutputNotFoundError(NotFound):
    def __str__(self) -> str:
        return f"no output {self.args[0]!r} of user {self.args[1]!r}"


class StoreError(RuntimeError):
    pass


class Revision(NamedTuple):
    """Where a user's documents stand: ``number`` counts changes within one incarnation."""

    incarnation: int
    number: int


@dataclass
class IngestStats:
    """What one batch did: records seen, and how many of them were new or changed (a
    record identical to the stored one writes nothing)."""

    seen: dict[str, int] = field(default_factory=dict)
    written: int = 0

    def count(self, kind: str) -> None:
        self.seen[kind] = self.seen.get(kind, 0) + 1


@dataclass(frozen=True)
class StoredOutput:
    """A generated output: its text (for an image, the paths), provenance, and its
    modality and media files (in order) for outputs other than text."""

    output_id: str
    user_id: str
    instruction: str
    strategy: str
    text: str
    provenance: dict[str, Any]
    created: str
    modality: str = "text"
    media: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class UserSummary:
    """A user and the size of their context (no content)."""

    user_id: str
    documents: int
    interactions: int
    subjects: int
    feedback: int


@runtime_checkable
class RecordStore(Protocol):
    """Users, their context and the shared catalog, with a change feed per user."""

    @property
    def location(self) -> str:
        """Where the store lives, for messages (a path or a URL without credentials)."""
        ...

    # -- writing context --------------------------------------------------------------
    def add(self, records: Iterable[Record]) -> IngestStats:
        """Write records in one transaction: all of them, or (on any error) none."""
        ...

    def delete_documents(self, user_id: str, doc_ids: Sequence[str]) -> int: ...

    # -- one user's context -----------------------------------------------------------
    def has_user(self, user_id: str) -> bool: ...

    def user(self, user_id: str) -> User: ...

    def users(self, offset: int = 0, limit: int | None = None) -> list[UserSummary]: ...

    def revision(self, user_id: str) -> Revision: ...

    def documents(
        self, user_id: str, doc_ids: Sequence[str] | None = None, *, kind: str | None = None
    ) -> list[Document]:
        """All the user's documents, those of one ``kind`` (filtered in the query: a photo
        search reads no blog posts), or the given ids in that order; oldest first."""
        ...

    def document_hashes(self, user_id: str) -> dict[str, str]: ...

    def document_changes(self, user_id: str, since: int) -> tuple[dict[str, str], list[str]]: ...

    def recent_doc_ids(self, user_id: str, k: int) -> list[str]: ...

    def interactions(self, user_id: str) -> list[Interaction]: ...

    def subjects(self, user_id: str) -> list[Subject]: ...

    def feedback(self, user_id: str) -> list[Feedback]: ...

    # -- stated preferences (written by ``add``, like every record) -------------------
    def preferences(
        self, user_id: str, preference_ids: Sequence[str] | None = None
    ) -> list[Preference]:
        """The user's stated preferences (those named, when ids are given), oldest first."""
        ...

    def delete_preferences(self, user_id: str, preference_ids: Sequence[str]) -> int:
        """Remove the user's preferences of these ids (another user's ids remove nothing);
        returns how many were removed."""
        ...

    # -- the catalog (shared by all users) --------------------------------------------
    def items(self, item_ids: Sequence[str] | None = None) -> list[Item]: ...

    def known_items(self, item_ids: Iterable[str]) -> set[str]: ...

    def all_interactions(self) -> list[Interaction]: ...


@runtime_checkable
class DerivedStore(Protocol):
    """What is computed from a user's context, each row scoped by user."""

    def row_counts(self, user_id: str | None = None) -> dict[str, int]:
        """How much the store holds, by kind (documents, embeddings, image_embeddings,
        summaries, outputs, output_media, artifacts, ...): of one user, or of everyone.
        What tests and operators check after a delete, without reading the database."""
        ...

    # -- the change feed's upkeep -----------------------------------------------------
    def deletions_pruned(self, user_id: str) -> int:
        """The revision up to which deletions were pruned (an older index must rebuild)."""
        ...

    def prune_deletions(self, user_id: str, upto: int) -> int:
        """Drop the record of deletions up to ``upto``, once an index has caught up."""
        ...

    # -- vectors ----------------------------------------------------------------------
    def embeddings(
        self, user_id: str, model_id: str, dim: int, doc_ids: Sequence[str] | None = None
    ) -> dict[str, tuple[str, np.ndarray]]: ...

    def put_embeddings(
        self, user_id: str, model_id: str, rows: Sequence[tuple[str, str, np.ndarray]]
    ) -> None: ...

    def image_embeddings(
        self, user_id: str, model_id: str, dim: int, keys: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Stored vectors of the user's images (keyed by content hash and view) for one
        image model; other fingerprints of that model are dropped."""
        ...

    def put_image_embeddings(
        self, user_id: str, model_id: str, rows: Sequence[tuple[str, np.ndarray]]
    ) -> None: ...

    # -- summaries and outputs --------------------------------------------------------
    def summary(self, user_id: str, key: str, docs_hash: str) -> str | None: ...

    def put_summary(self, user_id: str, key: str, docs_hash: str, text: str) -> None: ...

    def save_output(
        self,
        user_id: str,
        instruction: str,
        strategy: str,
        text: str,
        provenance: dict[str, Any],
        *,
        modality: str = "text",
        media: Sequence[Path | str] = (),
    ) -> StoredOutput:
        """Store an output and its media files (in order) in one transaction."""
        ...

    def output(self, user_id: str, output_id: str) -> StoredOutput:
        """One of the user's outputs; another user's output id is "not found" too."""
        ...

    def outputs(self, user_id: str) -> list[StoredOutput]: ...


@runtime_checkable
class ArtifactStore(Protocol):
    """Folders of trained artifacts: per user (removed with the user) and shared."""

    @property
    def artifacts_root(self) -> Path:
        """Where this store keeps files (per-user artifacts, shared models): a folder
        today, configured apart from the database."""
        ...

    def artifact_path(self, user_id: str, kind: str, name: str) -> Path:
        """A folder for one of the user's artifacts, registered so that deleting the user
        deletes it. The user must exist."""
        ...

    def artifacts(self, user_id: str) -> dict[tuple[str, str], Path]: ...

    def shared_path(self, kind: str, name: str) -> Path:
        """A folder for something trained over many users (a recommender)."""
        ...

    def shared_paths(self, kind: str) -> list[Path]:
        """The existing folders of ``kind`` made by ``shared_path`` (delete-user edits them)."""
        ...


@runtime_checkable
class ContextStore(RecordStore, DerivedStore, ArtifactStore, Protocol):
    """Users, their context, the shared catalog, and everything derived from them."""

    # -- forgetting and lifetime ------------------------------------------------------
    def delete_user(self, user_id: str) -> dict[str, int]:
        """Remove the user's rows and files (crash-proof, idempotent: deleting a deleted
        user sweeps what is left). Saved recommenders are edited by
        ``pgen.recommend.service.forget_user``."""
        ...

    def close(self) -> None: ...
