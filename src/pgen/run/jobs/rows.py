"""Every SQL statement of the jobs, in one class: ``SqliteJobRows`` on a SQLite file.

A Postgres twin is this class again with ``%s`` placeholders, ``GREATEST`` for two-value
``MAX``, ``IS NOT DISTINCT FROM`` for ``IS ?``, and ``CLAIM_LOCK = " FOR UPDATE SKIP
LOCKED"``: the claim's inner ``SELECT`` then skips rows that another worker's open
transaction holds, instead of waiting on them. On SQLite the same rule holds by the
write lock: the claim runs in one ``BEGIN IMMEDIATE`` transaction (one writer at a time),
so two workers never both move one row from ``queued`` to ``running``.

A claim is a token (``claim``) written with the row: a worker's later writes (heartbeat,
progress, end) name it, so the end of a worker that lost its lease (re-queued, claimed
by another) changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pgen.context.sqlite import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, kind TEXT NOT NULL, user_id TEXT,
    status TEXT NOT NULL, progress TEXT NOT NULL DEFAULT '', created TEXT NOT NULL,
    started TEXT, finished TEXT, result TEXT, error TEXT, owner TEXT NOT NULL,
    cancellable INTEGER NOT NULL, cancel INTEGER NOT NULL DEFAULT 0,
    forget INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant, created);
CREATE TABLE IF NOT EXISTS workers (
    worker TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, seen REAL NOT NULL)
"""
# Added to the first version's table (files written before durable jobs keep their rows).
_COLUMNS = {
    "work": "TEXT",
    "args": "TEXT",
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "max_attempts": "INTEGER NOT NULL DEFAULT 3",
    "worker": "TEXT",
    "claim": "TEXT",
    "lease_until": "REAL",
    "step": "INTEGER",
    "total": "INTEGER",
    "loss": "REAL",
}
ACTIVE = ("queued", "running")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


class _File(Database):
    def _migrate(self) -> None:
        with self.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
            for name, kind in _COLUMNS.items():
                if name not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
            db.execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created)")

    def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        return self._rows(sql, *params)


class SqliteJobRows:
    CLAIM_LOCK = ""  # Postgres: " FOR UPDATE SKIP LOCKED"

    def __init__(self, path: Path) -> None:
        self.file = _File(path)

    def close(self) -> None:
        self.file.close()

    # -- workers ----------------------------------------------------------------------
    def add_worker(self, worker: str, pid: int, host: str, seen: float) -> None:
        with self.file.transaction() as db:
            db.execute("INSERT INTO workers VALUES (?, ?, ?, ?)", (worker, pid, host, seen))

    def remove_worker(self, worker: str) -> None:
        with self.file.transaction() as db:
            db.execute("DELETE FROM workers WHERE worker=?", (worker,))

    def workers_running(self) -> list[sqlite3.Row]:
        """The workers that hold a running job (pid, host, last beat)."""
        return self.file.rows(
            "SELECT w.* FROM workers w WHERE w.worker IN "
            "(SELECT worker FROM jobs WHERE status='running')"
        )

    # -- writing ----------------------------------------------------------------------
    def insert(self, job: dict[str, Any], once: bool) -> str:
        """The new job's id, or (``once``) the id of the same kind's job of the same user
        queued or running already."""
        with self.file.transaction() as db:
            if once:
                pending = db.execute(
                    "SELECT job_id FROM jobs WHERE tenant=? AND kind=? AND user_id IS ? "
                    "AND status IN ('queued', 'running') ORDER BY created LIMIT 1",
                    (job["tenant"], job["kind"], job["user_id"]),
                ).fetchone()
                if pending:
                    return str(pending[0])
            columns = list(job)
            db.execute(
                f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({_marks(columns)})",
                [job[c] for c in columns],
            )
        return str(job["job_id"])

    def claim(
        self, works: Sequence[str], worker: str, claim: str, lease_until: float
    ) -> sqlite3.Row | None:
        """The oldest queued job of one of ``works``, now running under ``claim``."""
        if not works:
            return None
        queued = self.file.rows(  # a read first: an idle worker's poll takes no write lock
            f"SELECT 1 FROM jobs WHERE status='queued' AND work IN ({_marks(works)}) LIMIT 1",
            *works,
        )
        if not queued:
            return None
        with self.file.transaction() as db:
            found = db.execute(
                "UPDATE jobs SET status='running', worker=?, claim=?, lease_until=?, "
                "attempts=attempts+1, started=COALESCE(started, ?), progress='' "
                "WHERE job_id = (SELECT job_id FROM jobs WHERE status='queued' AND cancel=0 "
                f"AND work IN ({_marks(works)}) ORDER BY created, rowid LIMIT 1{self.CLAIM_LOCK}) "
                "RETURNING *",
                (worker, claim, lease_until, now_iso(), *works),
            ).fetchall()  # read to its end: a pending statement would block the commit
        return found[0] if found else None

    def renew(self, claims: Sequence[str], lease_until: float) -> dict[str, bool]:
        """Leases of ``claims`` extended; for each claim still held: its cancel flag.
        A claim missing from the answer was lost (re-queued, forgotten)."""
        if not claims:
            return {}
        with self.file.transaction() as db:
            db.execute(
                f"UPDATE jobs SET lease_until=? WHERE status='running' AND claim IN "
                f"({_marks(claims)})",
                (lease_until, *claims),
            )
            found = db.execute(
                f"SELECT claim, cancel FROM jobs WHERE status='running' AND claim IN "
                f"({_marks(claims)})",
                tuple(claims),
            ).fetchall()
        return {row["claim"]: bool(row["cancel"]) for row in found}

    def beat(self, worker: str, seen: float) -> None:
        with self.file.transaction() as db:
            db.execute("UPDATE workers SET seen=? WHERE worker=?", (seen, worker))

    def progress(
        self, claim: str, text: str, step: int | None, total: int | None, loss: float | None
    ) -> bool:
        """Progress of the job ``claim`` holds; False when the claim was lost."""
        with self.file.transaction() as db:
            done = db.execute(
                "UPDATE jobs SET progress=?, step=COALESCE(?, step), total=COALESCE(?, total), "
                "loss=COALESCE(?, loss) WHERE claim=? AND status='running'",
                (text, step, total, loss, claim),
            ).rowcount
        return bool(done)

    def cancel_flag(self, claim: str) -> bool | None:
        """The cancel flag of the job ``claim`` holds; None when the claim was lost."""
        rows = self.file.rows("SELECT cancel FROM jobs WHERE claim=? AND status='running'", claim)
        return None if not rows else bool(rows[0]["cancel"])

    def finish(self, claim: str, status: str, progress: str, result: Any, error: Any) -> bool:
        """The end of the job ``claim`` holds (only while it holds it). A job whose user
        was forgotten meanwhile goes instead. True when recorded."""
        text = None if result is None else json.dumps(result, default=str)
        with self.file.transaction() as db:
            done = db.execute(
                "UPDATE jobs SET status=?, progress=?, result=?, error=?, finished=?, "
                "worker=NULL, lease_until=NULL WHERE claim=? AND status='running'",
                (status, progress, text, error, now_iso(), claim),
            ).rowcount
            db.execute("DELETE FROM jobs WHERE claim=? AND forget=1", (claim,))
        return bool(done)

    def release(self, claims: Sequence[str]) -> None:
        """A stopping worker's running jobs back to the queue (the attempt not counted);
        ones a cancel or a forget asked to stop end here instead."""
        if not claims:
            return
        marks = _marks(claims)
        with self.file.transaction() as db:
            db.execute(f"DELETE FROM jobs WHERE forget=1 AND claim IN ({marks})", tuple(claims))
            db.execute(
                "UPDATE jobs SET status='cancelled', progress='cancelled', finished=?, "
                f"worker=NULL, lease_until=NULL WHERE status='running' AND cancel=1 "
                f"AND claim IN ({marks})",
                (now_iso(), *claims),
            )
            db.execute(
                "UPDATE jobs SET status='queued', worker=NULL, claim=NULL, lease_until=NULL, "
                "attempts=MAX(attempts-1, 0), progress='re-queued: its worker stopped' "
                f"WHERE status='running' AND claim IN ({marks})",
                tuple(claims),
            )

    def expired(self, now: float) -> bool:
        """Any running job's lease run out (a read: most calls need no write)."""
        return bool(
            self.file.rows(
                "SELECT 1 FROM jobs WHERE (status='running' AND COALESCE(lease_until, 0) < ?) "
                "OR (status='queued' AND work IS NULL) LIMIT 1",
                now,
            )
        )

    def expire(self, dead_workers: Sequence[str], now: float, lost: str) -> None:
        """Running jobs whose lease ran out (or whose worker is known dead): re-queued,
        or failed with ``lost`` after their last attempt, or cancelled when a cancel was
        asked; forgotten ones go."""
        with self.file.transaction() as db:
            if dead_workers:
                db.execute(
                    f"DELETE FROM workers WHERE worker IN ({_marks(dead_workers)})",
                    tuple(dead_workers),
                )
                db.execute(
                    "UPDATE jobs SET lease_until=0 WHERE status='running' "
                    f"AND worker IN ({_marks(dead_workers)})",
                    tuple(dead_workers),
                )
            gone = "status='running' AND COALESCE(lease_until, 0) < ?"
            db.execute(f"DELETE FROM jobs WHERE {gone} AND forget=1", (now,))
            db.execute(
                "UPDATE jobs SET status='cancelled', progress='cancelled', finished=?, "
                f"worker=NULL, claim=NULL WHERE {gone} AND cancel=1",
                (now_iso(), now),
            )
            db.execute(
                "UPDATE jobs SET status='failed', progress='', error=?, finished=?, "
                f"worker=NULL, claim=NULL WHERE {gone} AND attempts >= max_attempts",
                (lost, now_iso(), now),
            )
            db.execute(
                "UPDATE jobs SET status='queued', worker=NULL, claim=NULL, lease_until=NULL, "
                f"progress='re-queued: its worker stopped' WHERE {gone}",
                (now,),
            )
            # Rows of the first version (no work to run again): they cannot be re-queued.
            db.execute(
                "UPDATE jobs SET status='failed', error=?, finished=? "
                "WHERE status='queued' AND work IS NULL",
                (lost, now_iso()),
            )

    def cancel(self, tenant: str | None, job_id: str) -> None:
        """A queued job cancelled; a running one flagged (its worker stops it)."""
        with self.file.transaction() as db:
            scope = "" if tenant is None else " AND tenant=?"
            params: tuple[Any, ...] = (job_id,) if tenant is None else (job_id, tenant)
            db.execute(
                "UPDATE jobs SET status='cancelled', cancel=1, finished=?, progress='cancelled' "
                f"WHERE job_id=? AND status='queued'{scope}",
                (now_iso(), *params),
            )
            db.execute(
                f"UPDATE jobs SET cancel=1 WHERE job_id=? AND status='running'{scope}", params
            )

    def forget_user(self, tenant: str, user_id: str) -> tuple[list[str], int]:
        """The user's running jobs flagged to stop and go when they end; every other of
        their rows deleted now. Returns (running job ids, rows deleted)."""
        with self.file.transaction() as db:
            running = [
                row["job_id"]
                for row in db.execute(
                    "SELECT job_id FROM jobs WHERE tenant=? AND user_id=? AND status='running'",
                    (tenant, user_id),
                )
            ]
            db.execute(
                "UPDATE jobs SET forget=1, cancel=1 WHERE tenant=? AND user_id=? "
                "AND status='running'",
                (tenant, user_id),
            )
            gone = db.execute(
                "DELETE FROM jobs WHERE tenant=? AND user_id=? AND status!='running'",
                (tenant, user_id),
            ).rowcount
        return running, int(gone)

    # -- reading ----------------------------------------------------------------------
    def get(self, tenant: str | None, job_id: str) -> sqlite3.Row | None:
        if tenant is None:
            rows = self.file.rows("SELECT * FROM jobs WHERE job_id=?", job_id)
        else:
            rows = self.file.rows("SELECT * FROM jobs WHERE job_id=? AND tenant=?", job_id, tenant)
        return rows[0] if rows else None

    def of_tenant(self, tenant: str | None) -> list[sqlite3.Row]:
        if tenant is None:
            return self.file.rows("SELECT * FROM jobs ORDER BY created, rowid")
        return self.file.rows("SELECT * FROM jobs WHERE tenant=? ORDER BY created, rowid", tenant)

    def running_of(self, tenant: str, user_id: str) -> bool:
        rows = self.file.rows(
            "SELECT 1 FROM jobs WHERE tenant=? AND user_id=? AND status='running'", tenant, user_id
        )
        return bool(rows)
