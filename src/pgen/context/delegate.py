"""The store protocols' methods, each handed to the part that implements it (records,
derived data, artifacts): what makes a composed store a ``ContextStore`` without writing
every forward by hand in each backend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgen.context.base import (
    ArtifactStore,
    DerivedStore,
    IngestStats,
    RecordStore,
    Revision,
    StoredOutput,
    UserSummary,
)
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


class Delegating:
    """Forwards each protocol method to ``records``, ``derived`` or ``files``."""

    records: RecordStore
    derived: DerivedStore
    files: ArtifactStore

    # -- RecordStore ------------------------------------------------------------------
    def add(self, records: Iterable[Record]) -> IngestStats:
        return self.records.add(records)

    def delete_documents(self, user_id: str, doc_ids: Sequence[str]) -> int:
        return self.records.delete_documents(user_id, doc_ids)

    def has_user(self, user_id: str) -> bool:
        return self.records.has_user(user_id)

    def user(self, user_id: str) -> User:
        return self.records.user(user_id)

    def users(self, offset: int = 0, limit: int | None = None) -> list[UserSummary]:
        return self.records.users(offset, limit)

    def revision(self, user_id: str) -> Revision:
        return self.records.revision(user_id)

    def documents(
        self, user_id: str, doc_ids: Sequence[str] | None = None, *, kind: str | None = None
    ) -> list[Document]:
        return self.records.documents(user_id, doc_ids, kind=kind)

    def document_hashes(self, user_id: str) -> dict[str, str]:
        return self.records.document_hashes(user_id)

    def preferences(
        self, user_id: str, preference_ids: Sequence[str] | None = None
    ) -> list[Preference]:
        return self.records.preferences(user_id, preference_ids)

    def delete_preferences(self, user_id: str, preference_ids: Sequence[str]) -> int:
        return self.records.delete_preferences(user_id, preference_ids)

    def document_changes(self, user_id: str, since: int) -> tuple[dict[str, str], list[str]]:
        return self.records.document_changes(user_id, since)

    def recent_doc_ids(self, user_id: str, k: int) -> list[str]:
        return self.records.recent_doc_ids(user_id, k)

    def interactions(self, user_id: str) -> list[Interaction]:
        return self.records.interactions(user_id)

    def subjects(self, user_id: str) -> list[Subject]:
        return self.records.subjects(user_id)

    def feedback(self, user_id: str) -> list[Feedback]:
        return self.records.feedback(user_id)

    def items(self, item_ids: Sequence[str] | None = None) -> list[Item]:
        return self.records.items(item_ids)

    def known_items(self, item_ids: Iterable[str]) -> set[str]:
        return self.records.known_items(item_ids)

    def all_interactions(self) -> list[Interaction]:
        return self.records.all_interactions()

    # -- DerivedStore -----------------------------------------------------------------
    def row_counts(self, user_id: str | None = None) -> dict[str, int]:
        return self.derived.row_counts(user_id)

    def deletions_pruned(self, user_id: str) -> int:
        return self.derived.deletions_pruned(user_id)

    def prune_deletions(self, user_id: str, upto: int) -> int:
        return self.derived.prune_deletions(user_id, upto)

    def embeddings(
        self, user_id: str, model_id: str, dim: int, doc_ids: Sequence[str] | None = None
    ) -> dict[str, tuple[str, np.ndarray]]:
        return self.derived.embeddings(user_id, model_id, dim, doc_ids)

    def put_embeddings(
        self, user_id: str, model_id: str, rows: Sequence[tuple[str, str, np.ndarray]]
    ) -> None:
        self.derived.put_embeddings(user_id, model_id, rows)

    def image_embeddings(
        self, user_id: str, model_id: str, dim: int, keys: Sequence[str]
    ) -> dict[str, np.ndarray]:
        return self.derived.image_embeddings(user_id, model_id, dim, keys)

    def put_image_embeddings(
        self, user_id: str, model_id: str, rows: Sequence[tuple[str, np.ndarray]]
    ) -> None:
        self.derived.put_image_embeddings(user_id, model_id, rows)

    def summary(self, user_id: str, key: str, docs_hash: str) -> str | None:
        return self.derived.summary(user_id, key, docs_hash)

    def put_summary(self, user_id: str, key: str, docs_hash: str, text: str) -> None:
        self.derived.put_summary(user_id, key, docs_hash, text)

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
        return self.derived.save_output(
            user_id, instruction, strategy, text, provenance, modality=modality, media=media
        )

    def output(self, user_id: str, output_id: str) -> StoredOutput:
        return self.derived.output(user_id, output_id)

    def outputs(self, user_id: str) -> list[StoredOutput]:
        return self.derived.outputs(user_id)

    # -- ArtifactStore ----------------------------------------------------------------
    @property
    def artifacts_root(self) -> Path:
        return self.files.artifacts_root

    def artifact_path(self, user_id: str, kind: str, name: str) -> Path:
        return self.files.artifact_path(user_id, kind, name)

    def artifacts(self, user_id: str) -> dict[tuple[str, str], Path]:
        return self.files.artifacts(user_id)

    def shared_path(self, kind: str, name: str) -> Path:
        return self.files.shared_path(kind, name)

    def shared_paths(self, kind: str) -> list[Path]:
        return self.files.shared_paths(kind)
