"""The derived-data part of the SQLite store: vectors, summaries, outputs and their media,
and the upkeep of the change feed.

All of it hangs off the user row (ON DELETE CASCADE), so deleting the user removes it.
"""

from __future__ import annotations

import json
import mimetypes
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pgen.context.base import OutputNotFoundError, StoredOutput, UserNotFoundError
from pgen.context.records import to_json
from pgen.context.sqlite.connection import Database


def media_kind(path: Path | str, modality: str) -> str:
    """What a media file is (image, video, audio), from its name; else the modality."""
    guessed, _ = mimetypes.guess_type(str(path))
    major = guessed.split("/", 1)[0] if guessed else ""
    return major if major in ("image", "video", "audio") else modality


class SQLiteDerived:
    """``DerivedStore`` over one ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def row_counts(self, user_id: str | None = None) -> dict[str, int]:
        """Rows per table that has a ``user_id`` column (of one user, or of all)."""
        tables = [
            row["name"]
            for row in self.db.rows(
                "SELECT m.name FROM sqlite_master m WHERE m.type='table' AND EXISTS "
                "(SELECT 1 FROM pragma_table_info(m.name) WHERE name='user_id')"
            )
        ]
        where, params = ("", ()) if user_id is None else (" WHERE user_id=?", (user_id,))
        return {
            table: int(self.db.rows(f"SELECT COUNT(*) AS n FROM {table}{where}", *params)[0]["n"])
            for table in sorted(tables)
        }

    # -- the change feed's upkeep -----------------------------------------------------
    def deletions_pruned(self, user_id: str) -> int:
        """Deletions up to this revision are no longer listed: an index older than it
        cannot catch up from ``document_changes`` and must be rebuilt."""
        rows = self.db.rows("SELECT deletions_pruned FROM users WHERE user_id=?", user_id)
        if not rows:
            raise UserNotFoundError(user_id)
        return int(rows[0][0])

    def prune_deletions(self, user_id: str, upto: int) -> int:
        """Forget document deletions up to revision ``upto`` (an index saved at ``upto``
        has caught up with them; older ones rebuild from it). Returns rows removed."""
        with self.db.transaction() as db:
            removed = db.execute(
                "DELETE FROM document_deletions WHERE user_id=? AND revision<=?", (user_id, upto)
            ).rowcount
            db.execute(
                "UPDATE users SET deletions_pruned=max(deletions_pruned, ?) WHERE user_id=?",
                (upto, user_id),
            )
        return int(removed)

    # -- embeddings -------------------------------------------------------------------
    def _drop_other_fingerprints(self, table: str, user_id: str, model_id: str, dim: int) -> None:
        """Remove the user's vectors of this model name under another fingerprint or
        dimension. Looked for first: a read must not wait for the write lock (a long
        ingest in another process holds it) when, as almost always, there is nothing."""
        family = model_id.rsplit("#", 1)[0] + "#"
        where = (
            f"FROM {table} WHERE user_id=? AND (model_id=? AND dim<>? "
            "OR substr(model_id, 1, ?)=? AND model_id<>?)"
        )
        params = (user_id, model_id, dim, len(family), family, model_id)
        if self.db.rows(f"SELECT 1 {where} LIMIT 1", *params):
            with self.db.transaction() as db:
                db.execute(f"DELETE {where}", params)

    def embeddings(
        self, user_id: str, model_id: str, dim: int, doc_ids: Sequence[str] | None = None
    ) -> dict[str, tuple[str, np.ndarray]]:
        """doc_id -> (content hash, vector) stored for this model and dimension (for all
        the user's documents, or those of ``doc_ids``).

        A model id is ``name#fingerprint``. Vectors of the same name under another
        fingerprint, or of the same id with another dimension, mean the model changed
        behind its name: they are dropped here, never mixed with new ones. Vectors of other
        names stay (switching back to another model should not re-embed everything).
        """
        self._drop_other_fingerprints("embeddings", user_id, model_id, dim)
        sql = "SELECT doc_id, content_hash, vector FROM embeddings WHERE user_id=? AND model_id=?"
        if doc_ids is None:
            rows = self.db.rows(sql, user_id, model_id)
        else:
            rows = self.db.rows_in(sql + " AND doc_id", doc_ids, user_id, model_id)
        return {
            row["doc_id"]: (row["content_hash"], np.frombuffer(row["vector"], dtype=np.float32))
            for row in rows
        }

    def put_embeddings(
        self,
        user_id: str,
        model_id: str,
        rows: Sequence[tuple[str, str, np.ndarray]],
    ) -> None:
        """Store (doc_id, content hash, vector) rows, replacing older vectors of those docs."""
        with self.db.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO embeddings(user_id, doc_id, model_id, dim, content_hash, "
                "vector) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (user_id, doc_id, model_id, len(vec), digest, vec.astype(np.float32).tobytes())
                    for doc_id, digest, vec in rows
                ],
            )

    def image_embeddings(
        self, user_id: str, model_id: str, dim: int, keys: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """image key -> vector stored for this model and dimension, for the keys that have
        one. As with ``embeddings``, vectors of another fingerprint of the same model name
        (or another dimension) are dropped, never mixed with new ones."""
        self._drop_other_fingerprints("image_embeddings", user_id, model_id, dim)
        rows = self.db.rows_in(
            "SELECT image_key, vector FROM image_embeddings WHERE user_id=? AND model_id=? "
            "AND image_key",
            keys,
            user_id,
            model_id,
        )
        return {row["image_key"]: np.frombuffer(row["vector"], dtype=np.float32) for row in rows}

    def put_image_embeddings(
        self, user_id: str, model_id: str, rows: Sequence[tuple[str, np.ndarray]]
    ) -> None:
        """Store (image key, vector) rows for one of the user's images."""
        with self.db.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO image_embeddings(user_id, image_key, model_id, dim, "
                "vector) VALUES (?, ?, ?, ?, ?)",
                [
                    (user_id, key, model_id, len(vec), vec.astype(np.float32).tobytes())
                    for key, vec in rows
                ],
            )

    # -- summaries --------------------------------------------------------------------
    def summary(self, user_id: str, key: str, docs_hash: str) -> str | None:
        """The cached summary written under ``key`` from exactly these documents, if any."""
        rows = self.db.rows(
            "SELECT text FROM summaries WHERE user_id=? AND key=? AND docs_hash=?",
            user_id,
            key,
            docs_hash,
        )
        return rows[0]["text"] if rows else None

    def put_summary(self, user_id: str, key: str, docs_hash: str, text: str) -> None:
        with self.db.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO summaries(user_id, key, docs_hash, text) VALUES (?,?,?,?)",
                (user_id, key, docs_hash, text),
            )

    # -- generated outputs ------------------------------------------------------------
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
        """Store the output and its media files (in order) in one transaction."""
        output = StoredOutput(
            output_id=uuid.uuid4().hex,
            user_id=user_id,
            instruction=instruction,
            strategy=strategy,
            text=text,
            provenance=provenance,
            created=datetime.now(UTC).isoformat(),
            modality=modality,
            media=[str(path) for path in media],
        )
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO outputs(output_id, user_id, instruction, strategy, text, provenance, "
                "created, modality) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    output.output_id,
                    user_id,
                    instruction,
                    strategy,
                    text,
                    to_json(provenance),
                    output.created,
                    modality,
                ),
            )
            db.executemany(
                "INSERT INTO output_media(output_id, user_id, position, kind, path) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (output.output_id, user_id, position, media_kind(path, modality), path)
                    for position, path in enumerate(output.media)
                ],
            )
        return output

    def outputs(self, user_id: str) -> list[StoredOutput]:
        rows = self.db.rows("SELECT * FROM outputs WHERE user_id=? ORDER BY created", user_id)
        return self._with_media(user_id, rows)

    def output(self, user_id: str, output_id: str) -> StoredOutput:
        rows = self.db.rows(
            "SELECT * FROM outputs WHERE user_id=? AND output_id=?", user_id, output_id
        )
        if not rows:
            raise OutputNotFoundError(output_id, user_id)
        return self._with_media(user_id, rows)[0]

    def _with_media(self, user_id: str, rows: list[Any]) -> list[StoredOutput]:
        media: dict[str, list[str]] = {}
        found = self.db.rows_in(
            "SELECT output_id, position, path FROM output_media WHERE user_id=? AND output_id",
            [row["output_id"] for row in rows],
            user_id,
        )
        for row in sorted(found, key=lambda row: (row["output_id"], row["position"])):
            media.setdefault(row["output_id"], []).append(row["path"])
        return [
            StoredOutput(
                **{
                    **dict(row),
                    "provenance": json.loads(row["provenance"]),
                    "media": media.get(row["output_id"], []),
                }
            )
            for row in rows
        ]
