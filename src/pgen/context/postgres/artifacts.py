"""The artifacts part of the Postgres store: folders under a root apart from the database
(the ``artifacts`` setting: a folder, shared by replicas on a shared disk), registered in
the database so that deleting a user deletes their files, crash-proof (``pending_removals``,
``sweep``) exactly as the SQLite store does."""

from __future__ import annotations

import os
from pathlib import Path

from pgen.context.base import UserNotFoundError
from pgen.context.postgres.connection import PgDatabase
from pgen.context.sqlite.artifact_folders import remove_path, safe_name
from pgen.context.sqlite.connection import make_private_dir


class PgArtifacts:
    """``ArtifactStore``: folders under ``root``, registered in ``db``."""

    def __init__(self, db: PgDatabase, root: Path) -> None:
        self.db = db
        self.root = Path(root)

    @property
    def artifacts_root(self) -> Path:
        return self.root

    def user_folder(self, user_id: str) -> Path:
        return self.root / safe_name(user_id)

    def artifact_path(self, user_id: str, kind: str, name: str) -> Path:
        if not self.db.rows("SELECT 1 FROM users WHERE user_id=%s", user_id):
            raise UserNotFoundError(user_id)
        path = self.user_folder(user_id) / kind / safe_name(name)
        make_private_dir(path)
        with self.db.transaction() as db:
            db.execute(
                b"INSERT INTO artifacts(user_id, kind, name, path) VALUES (%s, %s, %s, %s) "
                b"ON CONFLICT (user_id, kind, name) DO UPDATE SET path=excluded.path",
                (user_id, kind, name, str(path)),
            )
        return path

    def shared_path(self, kind: str, name: str) -> Path:
        path = self.root / "shared" / kind / safe_name(name)
        make_private_dir(path)
        return path

    def shared_paths(self, kind: str) -> list[Path]:
        root = self.root / "shared" / kind
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def artifacts(self, user_id: str) -> dict[tuple[str, str], Path]:
        rows = self.db.rows("SELECT kind, name, path FROM artifacts WHERE user_id=%s", user_id)
        return {(row["kind"], row["name"]): Path(row["path"]) for row in rows}

    def sweep(self) -> int:
        """Remove the files of deleted users still listed in ``pending_removals``;
        idempotent; returns how many paths were listed."""
        pending = [Path(row["path"]) for row in self.db.rows("SELECT path FROM pending_removals")]
        for path in pending:
            # The same id may have been created again since, with new artifacts here.
            if not self.db.rows(
                "SELECT 1 FROM artifacts WHERE path=%s OR starts_with(path, %s)",
                str(path),
                f"{path}{os.sep}",
            ):
                remove_path(path)
        if pending:
            with self.db.transaction() as db, db.cursor() as cursor:
                cursor.executemany(
                    b"DELETE FROM pending_removals WHERE path=%s", [(str(p),) for p in pending]
                )
        return len(pending)
