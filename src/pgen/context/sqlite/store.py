"""``SQLiteStore``: the embedded ``ContextStore``, composed of its parts over one file.

One ``Database`` (connections, migrations, transactions) is shared by three parts, each
implementing one narrow protocol: ``SQLiteRecords`` (``RecordStore``), ``SQLiteDerived``
(``DerivedStore``) and ``SQLiteArtifacts`` (``ArtifactStore``, under a root configured
apart from the database). This class only hands each call to its part, and does what
spans all three: forgetting a user.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np

from pgen.context.base import (
    IngestStats,
    Revision,
    StoredOutput,
    UserNotFoundError,
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
from pgen.context.sqlite.artifact_folders import SQLiteArtifacts
from pgen.context.sqlite.connection import BUSY_TIMEOUT_S, WRITE_WAIT_S, Database
from pgen.context.sqlite.derived_tables import SQLiteDerived
from pgen.context.sqlite.record_tables import SQLiteRecords
from pgen.context.sqlite.schema import USER_TABLES


def default_artifacts_root(path: Path) -> Path:
    """Where a store at ``path`` keeps its files unless told otherwise."""
    return path.parent / f"{path.stem}-artifacts"


class SQLiteStore:
    """A SQLite file holding users, their context, the catalog and everything derived,
    with artifact folders under ``artifacts_root``."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = BUSY_TIMEOUT_S,
        write_wait: float = WRITE_WAIT_S,
        artifacts_root: str | Path | None = None,
    ) -> None:
        self.database = Database(path, busy_timeout=busy_timeout, write_wait=write_wait)
        self.path = self.database.path
        root = default_artifacts_root(self.path) if artifacts_root is None else artifacts_root
        self.records = SQLiteRecords(self.database)
        self.derived = SQLiteDerived(self.database)
        self.files = SQLiteArtifacts(self.database, Path(root))
        self.sweep()  # finish a delete-user that crashed between its commit and its files

    # -- the database -----------------------------------------------------------------
    @property
    def location(self) -> str:
        return self.database.location

    @property
    def schema_version(self) -> int:
        return self.database.schema_version

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.database.transaction() as db:
            yield db

    @property
    def _db(self) -> sqlite3.Connection:
        return self.database._db

    def _rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        return self.database.rows(sql, *params)

    def checkpoint(self, wait: float = 10.0) -> bool:
        return self.database.checkpoint(wait)

    def row_counts(self, user_id: str | None = None) -> dict[str, int]:
        tables = [
            row["name"]
            for row in self.database.rows(
                "SELECT m.name FROM sqlite_master m WHERE m.type='table' AND EXISTS "
                "(SELECT 1 FROM pragma_table_info(m.name) WHERE name='user_id')"
            )
        ]
        where, params = ("", ()) if user_id is None else (" WHERE user_id=?", (user_id,))
        return {
            table: int(
                self.database.rows(f"SELECT COUNT(*) AS n FROM {table}{where}", *params)[0]["n"]
            )
            for table in sorted(tables)
        }

    def integrity_problems(self) -> list[str]:
        """What is wrong with the file ([] when sound: after a crash, say)."""
        return self.database.integrity_problems()

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def preferences(
        self, user_id: str, preference_ids: Sequence[str] | None = None
    ) -> list[Preference]:
        return self.records.preferences(user_id, preference_ids)

    def delete_preferences(self, user_id: str, preference_ids: Sequence[str]) -> int:
        return self.records.delete_preferences(user_id, preference_ids)

    def items(self, item_ids: Sequence[str] | None = None) -> list[Item]:
        return self.records.items(item_ids)

    def known_items(self, item_ids: Iterable[str]) -> set[str]:
        return self.records.known_items(item_ids)

    def all_interactions(self) -> list[Interaction]:
        return self.records.all_interactions()

    # -- DerivedStore -----------------------------------------------------------------
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

    def sweep(self) -> int:
        """Finish removing deleted users' files; then, if there were any, scrub the file
        (no stale copy of their rows or paths is left in it, see ``Database.scrub``)."""
        swept = self.files.sweep()
        if swept:
            self.database.scrub(wait=1.0)
        return swept

    # -- forgetting a user ------------------------------------------------------------
    def delete_user(self, user_id: str) -> dict[str, int]:
        """Remove the user, every row derived from them and their files. Returns counts.

        Crash-proof: the user's files are listed in ``pending_removals`` in the same
        transaction that deletes their rows, then removed after the commit (a failed
        transaction must leave them in place), then unlisted. A crash in between leaves
        the list, which the next ``delete_user`` or the next open of the store finishes.
        Deleting a user already deleted sweeps what is left; only a user of whom nothing
        at all is left is "not found".
        """
        counts: dict[str, int] = {}
        folder = self.files.user_folder(user_id)
        with self.database.transaction() as db:
            paths = [
                Path(row["path"])
                for row in db.execute("SELECT path FROM artifacts WHERE user_id=?", (user_id,))
            ]
            for table in USER_TABLES:
                counts[table] = db.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE user_id=?", (user_id,)
                ).fetchone()[0]
            existed = db.execute("DELETE FROM users WHERE user_id=?", (user_id,)).rowcount
            db.executemany(
                "INSERT OR IGNORE INTO pending_removals(path) VALUES (?)",
                [(str(path),) for path in [*paths, folder]],
            )
        leftovers = folder.exists() or any(path.exists() for path in paths)
        self.sweep()  # the files, then the file itself: rebuilt without stale copies
        # The WAL still holds pre-delete page images: fold it into the (zeroed) main file.
        checkpointed = self.checkpoint()
        if not existed and not leftovers:
            raise UserNotFoundError(user_id)
        counts["files"] = len(paths) if existed else int(leftovers)
        counts["checkpointed"] = int(checkpointed)
        return counts
