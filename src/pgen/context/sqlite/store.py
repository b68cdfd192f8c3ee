"""``SQLiteStore``: the embedded ``ContextStore``, composed of its parts over one file.

One ``Database`` (connections, migrations, transactions) is shared by three parts, each
implementing one narrow protocol: ``SQLiteRecords`` (``RecordStore``), ``SQLiteDerived``
(``DerivedStore``) and ``SQLiteArtifacts`` (``ArtifactStore``, under a root configured
apart from the database). This class only hands each call to its part, and does what
spans all three: forgetting a user.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from pgen.context.base import (
    UserNotFoundError,
)
from pgen.context.delegate import Delegating
from pgen.context.sqlite.artifact_folders import SQLiteArtifacts
from pgen.context.sqlite.connection import BUSY_TIMEOUT_S, WRITE_WAIT_S, Database
from pgen.context.sqlite.derived_tables import SQLiteDerived
from pgen.context.sqlite.record_tables import SQLiteRecords
from pgen.context.sqlite.schema import USER_TABLES


def default_artifacts_root(path: Path) -> Path:
    """Where a store at ``path`` keeps its files unless told otherwise."""
    return path.parent / f"{path.stem}-artifacts"


class SQLiteStore(Delegating):
    """A SQLite file holding users, their context, the catalog and everything derived,
    with artifact folders under ``artifacts_root``."""

    records: SQLiteRecords
    files: SQLiteArtifacts

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

    def integrity_problems(self) -> list[str]:
        """What is wrong with the file ([] when sound: after a crash, say)."""
        return self.database.integrity_problems()

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the protocols' methods: ``Delegating`` hands each to records, derived or files --
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
