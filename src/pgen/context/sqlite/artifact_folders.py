"""The artifacts part of the SQLite store: folders of trained artifacts under a root
configured apart from the database (a folder today), registered in the database so that
deleting a user deletes their files, crash-proof (``pending_removals``, ``sweep``)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from pgen.context.base import UserNotFoundError
from pgen.context.sqlite.connection import Database, make_private_dir


def safe_name(text: str) -> str:
    """A folder name for any user id or subject name, without collisions."""
    clean = "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40]
    return f"{clean}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def remove_path(path: Path) -> None:
    """Remove a file or folder if it is there (idempotent; a missing one is done)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=False)
    else:
        path.unlink(missing_ok=True)


class SQLiteArtifacts:
    """``ArtifactStore``: folders under ``root``, registered in ``db``."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.root = Path(root)

    @property
    def artifacts_root(self) -> Path:
        return self.root

    def user_folder(self, user_id: str) -> Path:
        """The folder holding every artifact of one user (removed with the user)."""
        return self.root / safe_name(user_id)

    def artifact_path(self, user_id: str, kind: str, name: str) -> Path:
        """A folder for a per-user artifact (adapter, embedding, model), registered so that
        deleting the user deletes it. The user must exist."""
        if not self.db.rows("SELECT 1 FROM users WHERE user_id=?", user_id):
            raise UserNotFoundError(user_id)
        path = self.user_folder(user_id) / kind / safe_name(name)
        make_private_dir(path)
        with self.db.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO artifacts(user_id, kind, name, path) VALUES (?, ?, ?, ?)",
                (user_id, kind, name, str(path)),
            )
        return path

    def shared_path(self, kind: str, name: str) -> Path:
        """A folder for something trained over many users (a recommender): not any one
        user's artifact, so delete-user must edit or remove it (see ``delete_user``)."""
        path = self.root / "shared" / kind / safe_name(name)
        make_private_dir(path)
        return path

    def shared_paths(self, kind: str) -> list[Path]:
        root = self.root / "shared" / kind
        if not root.is_dir():
            return []
        # Dotted names are a writer's half-made or swapped-out copies, not models.
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def artifacts(self, user_id: str) -> dict[tuple[str, str], Path]:
        rows = self.db.rows("SELECT kind, name, path FROM artifacts WHERE user_id=?", user_id)
        return {(row["kind"], row["name"]): Path(row["path"]) for row in rows}

    def sweep(self) -> int:
        """Remove the files of deleted users still listed in ``pending_removals`` (left by
        a crash, or by the delete that just committed). Idempotent; returns how many.
        The paths name the user: the caller scrubs the file afterwards."""
        pending = [Path(row["path"]) for row in self.db.rows("SELECT path FROM pending_removals")]
        for path in pending:
            # The same id may have been created again since, with new artifacts here.
            if not self.db.rows(
                "SELECT 1 FROM artifacts WHERE path=? OR substr(path, 1, ?)=?",
                str(path),
                len(str(path)) + 1,
                f"{path}{os.sep}",
            ):
                remove_path(path)
        if pending:
            with self.db.transaction() as db:
                db.executemany(
                    "DELETE FROM pending_removals WHERE path=?", [(str(p),) for p in pending]
                )
        return len(pending)
