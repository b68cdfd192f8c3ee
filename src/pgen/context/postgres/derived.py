"""The derived-data part of the Postgres store: vectors, summaries, outputs and their media,
and the upkeep of the change feed. All of it hangs off the user row (ON DELETE CASCADE).

Vectors are stored once per (user, document, model) with the content hash they were
computed from, as in SQLite, and come back to the retriever, which scores one user's
vectors exactly in numpy: Debian's PostgreSQL has no pgvector, and a user's few hundred
vectors score in well under a millisecond (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pgen.context.base import OutputNotFoundError, StoredOutput, UserNotFoundError
from pgen.context.postgres.connection import PgDatabase, Row
from pgen.context.records import to_json
from pgen.context.sqlite.derived_tables import media_kind


class PgDerived:
    """``DerivedStore`` over one ``PgDatabase``."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    def row_counts(self, user_id: str | None = None) -> dict[str, int]:
        tables = [
            row["table_name"]
            for row in self.db.rows(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema=%s AND column_name='user_id'",
                self.db.schema,
            )
        ]
        where, params = ("", ()) if user_id is None else (" WHERE user_id=%s", (user_id,))
        return {
            table: int(self.db.rows(f"SELECT COUNT(*) AS n FROM {table}{where}", *params)[0]["n"])
            for table in sorted(tables)
        }

    # -- the change feed's upkeep -----------------------------------------------------
    def deletions_pruned(self, user_id: str) -> int:
        rows = self.db.rows("SELECT deletions_pruned FROM users WHERE user_id=%s", user_id)
        if not rows:
            raise UserNotFoundError(user_id)
        return int(rows[0]["deletions_pruned"])

    def prune_deletions(self, user_id: str, upto: int) -> int:
        with self.db.transaction() as db:
            removed = db.execute(
                b"DELETE FROM document_deletions WHERE user_id=%s AND revision<=%s",
                (user_id, upto),
            ).rowcount
            db.execute(
                b"UPDATE users SET deletions_pruned=greatest(deletions_pruned, %s) "
                b"WHERE user_id=%s",
                (upto, user_id),
            )
        return int(removed)

    # -- embeddings -------------------------------------------------------------------
    def _drop_other_fingerprints(self, table: str, user_id: str, model_id: str, dim: int) -> None:
        """Remove the user's vectors of this model name under another fingerprint or
        dimension (looked for first: almost always there is nothing to delete)."""
        family = model_id.rsplit("#", 1)[0] + "#"
        where = (
            f"FROM {table} WHERE user_id=%s AND (model_id=%s AND dim<>%s "
            "OR starts_with(model_id, %s) AND model_id<>%s)"
        )
        params = (user_id, model_id, dim, family, model_id)
        if self.db.rows(f"SELECT 1 {where} LIMIT 1", *params):
            with self.db.transaction() as db:
                db.execute(f"DELETE {where}".encode(), params)

    def embeddings(
        self, user_id: str, model_id: str, dim: int, doc_ids: Sequence[str] | None = None
    ) -> dict[str, tuple[str, np.ndarray]]:
        self._drop_other_fingerprints("embeddings", user_id, model_id, dim)
        query = (
            "SELECT doc_id, content_hash, vector FROM embeddings WHERE user_id=%s AND model_id=%s"
        )
        if doc_ids is None:
            rows = self.db.rows(query, user_id, model_id)
        else:
            rows = self.db.rows_any(query + " AND doc_id = ANY(%s)", doc_ids, user_id, model_id)
        return {
            row["doc_id"]: (row["content_hash"], np.frombuffer(row["vector"], dtype=np.float32))
            for row in rows
        }

    def put_embeddings(
        self, user_id: str, model_id: str, rows: Sequence[tuple[str, str, np.ndarray]]
    ) -> None:
        with self.db.transaction() as db, db.cursor() as cursor:
            cursor.executemany(
                b"INSERT INTO embeddings(user_id, doc_id, model_id, dim, content_hash, vector) "
                b"VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (user_id, model_id, doc_id) "
                b"DO UPDATE SET dim=excluded.dim, content_hash=excluded.content_hash, "
                b"vector=excluded.vector",
                [
                    (user_id, doc_id, model_id, len(vec), digest, vec.astype(np.float32).tobytes())
                    for doc_id, digest, vec in rows
                ],
            )

    def image_embeddings(
        self, user_id: str, model_id: str, dim: int, keys: Sequence[str]
    ) -> dict[str, np.ndarray]:
        self._drop_other_fingerprints("image_embeddings", user_id, model_id, dim)
        rows = self.db.rows_any(
            "SELECT image_key, vector FROM image_embeddings WHERE user_id=%s AND model_id=%s "
            "AND image_key = ANY(%s)",
            keys,
            user_id,
            model_id,
        )
        return {row["image_key"]: np.frombuffer(row["vector"], dtype=np.float32) for row in rows}

    def put_image_embeddings(
        self, user_id: str, model_id: str, rows: Sequence[tuple[str, np.ndarray]]
    ) -> None:
        with self.db.transaction() as db, db.cursor() as cursor:
            cursor.executemany(
                b"INSERT INTO image_embeddings(user_id, image_key, model_id, dim, vector) "
                b"VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id, model_id, image_key) "
                b"DO UPDATE SET dim=excluded.dim, vector=excluded.vector",
                [
                    (user_id, key, model_id, len(vec), vec.astype(np.float32).tobytes())
                    for key, vec in rows
                ],
            )

    # -- summaries --------------------------------------------------------------------
    def summary(self, user_id: str, key: str, docs_hash: str) -> str | None:
        rows = self.db.rows(
            "SELECT text FROM summaries WHERE user_id=%s AND key=%s AND docs_hash=%s",
            user_id,
            key,
            docs_hash,
        )
        return str(rows[0]["text"]) if rows else None

    def put_summary(self, user_id: str, key: str, docs_hash: str, text: str) -> None:
        with self.db.transaction() as db:
            db.execute(
                b"INSERT INTO summaries(user_id, key, docs_hash, text) VALUES (%s, %s, %s, %s) "
                b"ON CONFLICT (user_id, key) DO UPDATE SET docs_hash=excluded.docs_hash, "
                b"text=excluded.text",
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
                b"INSERT INTO outputs(output_id, user_id, instruction, strategy, text, "
                b"provenance, created, modality) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
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
            with db.cursor() as cursor:
                cursor.executemany(
                    b"INSERT INTO output_media(output_id, user_id, position, kind, path) "
                    b"VALUES (%s, %s, %s, %s, %s)",
                    [
                        (output.output_id, user_id, position, media_kind(path, modality), path)
                        for position, path in enumerate(output.media)
                    ],
                )
        return output

    def outputs(self, user_id: str) -> list[StoredOutput]:
        rows = self.db.rows(
            "SELECT * FROM outputs WHERE user_id=%s ORDER BY created, output_id", user_id
        )
        return self._with_media(user_id, rows)

    def output(self, user_id: str, output_id: str) -> StoredOutput:
        rows = self.db.rows(
            "SELECT * FROM outputs WHERE user_id=%s AND output_id=%s", user_id, output_id
        )
        if not rows:
            raise OutputNotFoundError(output_id, user_id)
        return self._with_media(user_id, rows)[0]

    def _with_media(self, user_id: str, rows: list[Row]) -> list[StoredOutput]:
        media: dict[str, list[str]] = {}
        found = self.db.rows_any(
            "SELECT output_id, path FROM output_media WHERE user_id=%s AND output_id = ANY(%s) "
            "ORDER BY output_id, position",
            [row["output_id"] for row in rows],
            user_id,
        )
        for row in found:
            media.setdefault(row["output_id"], []).append(row["path"])
        return [
            StoredOutput(
                **{
                    **row,
                    "provenance": json.loads(row["provenance"]),
                    "media": media.get(row["output_id"], []),
                }
            )
            for row in rows
        ]
