"""``PostgresStore``: the ``ContextStore`` for many machines, composed of its parts over one
database schema (``PgRecords``, ``PgDerived``, ``PgArtifacts``), as ``SQLiteStore`` is over
one file. What spans the parts lives here: forgetting a user, down to the table files.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from pgen.context.base import UserNotFoundError
from pgen.context.delegate import Delegating
from pgen.context.postgres.artifacts import PgArtifacts
from pgen.context.postgres.connection import Connection, PgDatabase
from pgen.context.postgres.derived import PgDerived
from pgen.context.postgres.records import PgRecords
from pgen.context.postgres.schema import SCRUBBED_TABLES, USER_TABLES

SCRUB_CHOICES = ("full", "none")


class PostgresStore(Delegating):
    """Users, their context, the catalog and everything derived, in one schema of one
    PostgreSQL database, with artifact folders under ``artifacts_root``.

    ``scrub``: what delete-user does after its commit so that no dead copy of the user's
    rows stays in a table file: ``full`` (VACUUM FULL of the touched tables: rewritten,
    old files truncated; it holds an exclusive lock on them while it runs, measured in
    docs/benchmarks.md) or ``none`` (dead tuples stay until autovacuum reuses the space:
    readable in the files meanwhile; see docs/privacy.md)."""

    files: PgArtifacts

    def __init__(
        self,
        url: str,
        *,
        artifacts_root: str | Path,
        schema: str = "pgen",
        pool_size: int = 8,
        scrub: str = "full",
    ) -> None:
        if scrub not in SCRUB_CHOICES:
            raise ValueError(f"scrub must be one of {', '.join(SCRUB_CHOICES)}, got {scrub!r}")
        self.database = PgDatabase(url, schema, pool_size=pool_size)
        self.scrub = scrub
        self.records = PgRecords(self.database)
        self.derived = PgDerived(self.database)
        self.files = PgArtifacts(self.database, Path(artifacts_root))
        self.sweep()  # finish a delete-user that crashed between its commit and its files

    @property
    def location(self) -> str:
        return self.database.location

    @property
    def schema_version(self) -> int:
        return self.database.schema_version

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Several store calls as one atomic unit (as ``SQLiteStore.transaction``): calls
        in this thread inside it join it."""
        with self.database.transaction() as db:
            yield db

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sweep(self) -> int:
        """Finish removing deleted users' files, then scrub the tables that named them."""
        swept = self.files.sweep()
        if swept and self.scrub == "full":
            self.database.vacuum_full(SCRUBBED_TABLES)
        return swept

    # -- forgetting a user ------------------------------------------------------------
    def delete_user(self, user_id: str) -> dict[str, int]:
        """Remove the user, every row derived from them and their files; then rewrite the
        tables (``scrub``). Crash-proof as in SQLite: the files are listed in
        ``pending_removals`` in the transaction that deletes the rows, removed after the
        commit, then unlisted; the next delete-user or open finishes a crashed one."""
        counts: dict[str, int] = {}
        folder = self.files.user_folder(user_id)
        with self.database.transaction() as db:
            # Lock the user's row first: a concurrent ingest for this user waits, then
            # finds the user gone (and creates a new incarnation), never half of both.
            db.execute(b"SELECT 1 FROM users WHERE user_id=%s FOR UPDATE", (user_id,))
            paths = [
                Path(row["path"])
                for row in db.execute(
                    b"SELECT path FROM artifacts WHERE user_id=%s", (user_id,)
                ).fetchall()
            ]
            for table in USER_TABLES:
                row = db.execute(
                    f"SELECT COUNT(*) AS n FROM {table} WHERE user_id=%s".encode(), (user_id,)
                ).fetchone()
                counts[table] = int(row["n"]) if row else 0
            existed = db.execute(b"DELETE FROM users WHERE user_id=%s", (user_id,)).rowcount
            leftovers = folder.exists() or any(path.exists() for path in paths)
            if not existed and not leftovers:
                # Nothing to forget: write nothing and rewrite nothing (an unknown id sent
                # again and again must not make the server rewrite its tables).
                raise UserNotFoundError(user_id)
            with db.cursor() as cursor:
                cursor.executemany(
                    b"INSERT INTO pending_removals(path) VALUES (%s) ON CONFLICT DO NOTHING",
                    [(str(path),) for path in [*paths, folder]],
                )
        self.sweep()  # the files, then the tables rewritten without the dead rows
        counts["files"] = len(paths) if existed else int(leftovers)
        counts["scrubbed"] = int(self.scrub == "full")
        return counts
