"""Data the store derives from a user's context: embeddings, summaries, outputs, artifacts.

All of it hangs off the user row (ON DELETE CASCADE), and files on disk are registered
as artifacts, so ``delete_user`` removes every trace of a user in one call.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pgen.context.base import OutputNotFoundError, StoredOutput, UserNotFoundError
from pgen.context.records import to_json
from pgen.context.schema import USER_TABLES
from pgen.context.sqlite import Database, make_private_dir


def safe_name(text: str) -> str:
    """A folder name for any user id or subject name, without collisions."""
    clean = "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40]
    return f"{clean}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _output(row: Any) -> StoredOutput:
    return StoredOutput(**{**dict(row), "provenance": json.loads(row["provenance"])})


class DerivedData(Database):
    def __init__(self, path: str | Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.sweep()  # finish a delete-user that crashed between its commit and its files

    @property
    def artifacts_root(self) -> Path:
        return self.path.parent / f"{self.path.stem}-artifacts"

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
        if self._rows(f"SELECT 1 {where} LIMIT 1", *params):
            with self.transaction() as db:
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
            rows = self._rows(sql, user_id, model_id)
        else:
            rows = self._rows_in(sql + " AND doc_id", doc_ids, user_id, model_id)
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
        with self.transaction() as db:
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
        rows = self._rows_in(
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
        with self.transaction() as db:
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
        rows = self._rows(
            "SELECT text FROM summaries WHERE user_id=? AND key=? AND docs_hash=?",
            user_id,
            key,
            docs_hash,
        )
        return rows[0]["text"] if rows else None

    def put_summary(self, user_id: str, key: str, docs_hash: str, text: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO summaries(user_id, key, docs_hash, text) VALUES (?,?,?,?)",
                (user_id, key, docs_hash, text),
            )

    # -- generated outputs ------------------------------------------------------------
    def save_output(
        self, user_id: str, instruction: str, strategy: str, text: str, provenance: dict[str, Any]
    ) -> StoredOutput:
        output = StoredOutput(
            output_id=uuid.uuid4().hex,
            user_id=user_id,
            instruction=instruction,
            strategy=strategy,
            text=text,
            provenance=provenance,
            created=datetime.now(UTC).isoformat(),
        )
        with self.transaction() as db:
            db.execute(
                "INSERT INTO outputs(output_id, user_id, instruction, strategy, text, provenance, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    output.output_id,
                    user_id,
                    instruction,
                    strategy,
                    text,
                    to_json(provenance),
                    output.created,
                ),
            )
        return output

    def outputs(self, user_id: str) -> list[StoredOutput]:
        rows = self._rows("SELECT * FROM outputs WHERE user_id=? ORDER BY created", user_id)
        return [_output(row) for row in rows]

    def output(self, user_id: str, output_id: str) -> StoredOutput:
        rows = self._rows(
            "SELECT * FROM outputs WHERE user_id=? AND output_id=?", user_id, output_id
        )
        if not rows:
            raise OutputNotFoundError(output_id, user_id)
        return _output(rows[0])

    # -- artifacts on disk ------------------------------------------------------------
    def artifact_path(self, user_id: str, kind: str, name: str) -> Path:
        """A folder for a per-user artifact (adapter, embedding, model), registered so that
        deleting the user deletes it. The user must exist."""
        if not self.has_user(user_id):
            raise UserNotFoundError(user_id)
        path = self.artifacts_root / safe_name(user_id) / kind / safe_name(name)
        make_private_dir(path)
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO artifacts(user_id, kind, name, path) VALUES (?, ?, ?, ?)",
                (user_id, kind, name, str(path)),
            )
        return path

    def shared_path(self, kind: str, name: str) -> Path:
        """A folder for something trained over many users (a recommender): not any one
        user's artifact, so delete-user must edit or remove it (see ``delete_user``)."""
        path = self.artifacts_root / "shared" / kind / safe_name(name)
        make_private_dir(path)
        return path

    def shared_paths(self, kind: str) -> list[Path]:
        root = self.artifacts_root / "shared" / kind
        if not root.is_dir():
            return []
        # Dotted names are a writer's half-made or swapped-out copies, not models.
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def artifacts(self, user_id: str) -> dict[tuple[str, str], Path]:
        rows = self._rows("SELECT kind, name, path FROM artifacts WHERE user_id=?", user_id)
        return {(row["kind"], row["name"]): Path(row["path"]) for row in rows}

    def has_user(self, user_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM users WHERE user_id=?", user_id))

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
        folder = self.artifacts_root / safe_name(user_id)
        with self.transaction() as db:
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
        self.sweep()
        # The WAL still holds pre-delete page images: fold it into the (zeroed) main file.
        checkpointed = self.checkpoint()
        if not existed and not leftovers:
            raise UserNotFoundError(user_id)
        counts["files"] = len(paths) if existed else int(leftovers)
        counts["checkpointed"] = int(checkpointed)
        return counts

    def sweep(self) -> int:
        """Remove the files of deleted users still listed in ``pending_removals`` (left by
        a crash, or by the delete that just committed). Idempotent; returns how many."""
        pending = [Path(row["path"]) for row in self._rows("SELECT path FROM pending_removals")]
        for path in pending:
            # The same id may have been created again since, with new artifacts here.
            if not self._rows(
                "SELECT 1 FROM artifacts WHERE path=? OR substr(path, 1, ?)=?",
                str(path),
                len(str(path)) + 1,
                f"{path}{os.sep}",
            ):
                remove_path(path)
        if pending:
            with self.transaction() as db:
                db.executemany(
                    "DELETE FROM pending_removals WHERE path=?", [(str(p),) for p in pending]
                )
            self.checkpoint(wait=1.0)  # the paths name the user: out of the WAL too
        return len(pending)

    def checkpoint(self, wait: float = 10.0) -> bool:
        """Fold the WAL into the (zeroed) main file and truncate it; True when that
        completed. A reader holding an old snapshot (another thread or process) blocks
        it: retry for up to ``wait`` seconds, then report False (the next delete-user,
        sweep or last close of the store checkpoints again)."""
        db = self._db
        deadline = time.monotonic() + wait
        db.execute("PRAGMA busy_timeout=100")  # short waits here, so the deadline holds
        try:
            while True:
                busy, _log, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        finally:
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")


def remove_path(path: Path) -> None:
    """Remove a file or folder if it is there (idempotent; a missing one is done)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=False)
    else:
        path.unlink(missing_ok=True)
