"""The jobs' rows in PostgreSQL: ``PgJobRows``, the twin of ``SqliteJobRows`` (rows.py).

Same statements, same meaning; the dialect's differences only: ``%s`` placeholders,
``GREATEST`` for a two-value ``MAX``, ``IS NOT DISTINCT FROM`` for ``IS ?``, ``= ANY(%s)``
for a list, and ``FOR UPDATE SKIP LOCKED`` in the claim: the claim's inner ``SELECT``
passes over a row another worker's open claim holds instead of waiting on it, and
re-checks ``status='queued'`` on a row committed meanwhile, so two workers never both
move one row to ``running``. ``insert(once=True)`` takes a transaction-scoped advisory
lock on (tenant, kind, user): two replicas submitting the same training at once find one
job, as SQLite's single writer gives.

The rows live in a schema of their own (``pgen_jobs``) of the store's database, versioned
like the store's (``schema_version``), so tenants' schemas hold no job rows and a job's
tenant is a column, as in SQLite. Forgetting: the rows of a forgotten user are deleted
and the table rewritten (``VACUUM FULL``): a plain delete leaves the row's bytes in the
table file until the page is reused (docs/privacy.md). WAL and backups keep them for as
long as those are kept (docs/deploy.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from pgen.context.postgres.connection import check_schema, open_pool, redact
from pgen.context.postgres.schema import migrate
from pgen.run.jobs.rows import now_iso

Row = dict[str, Any]
SCHEMA = "pgen_jobs"

# One entry per version, applied in order (``schema_version`` records how many ran).
MIGRATIONS: list[str] = [
    # 1: the jobs and the workers that claim them (the SQLite file's columns, all at once).
    """
    CREATE TABLE jobs (
        seq          BIGSERIAL,
        job_id       TEXT COLLATE "C" PRIMARY KEY,
        tenant       TEXT COLLATE "C" NOT NULL,
        kind         TEXT COLLATE "C" NOT NULL,
        user_id      TEXT COLLATE "C",
        status       TEXT COLLATE "C" NOT NULL,
        progress     TEXT COLLATE "C" NOT NULL DEFAULT '',
        created      TEXT COLLATE "C" NOT NULL,
        started      TEXT COLLATE "C",
        finished     TEXT COLLATE "C",
        result       TEXT COLLATE "C",
        error        TEXT COLLATE "C",
        owner        TEXT COLLATE "C" NOT NULL,
        cancellable  INTEGER NOT NULL,
        cancel       INTEGER NOT NULL DEFAULT 0,
        forget       INTEGER NOT NULL DEFAULT 0,
        work         TEXT COLLATE "C",
        args         TEXT COLLATE "C",
        attempts     INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 3,
        worker       TEXT COLLATE "C",
        claim        TEXT COLLATE "C",
        lease_until  DOUBLE PRECISION,
        step         INTEGER,
        total        INTEGER,
        loss         DOUBLE PRECISION
    );
    CREATE INDEX jobs_tenant ON jobs (tenant, created);
    CREATE INDEX jobs_status ON jobs (status, created);
    CREATE INDEX jobs_claim ON jobs (claim);
    CREATE TABLE workers (
        worker TEXT COLLATE "C" PRIMARY KEY,
        pid    INTEGER NOT NULL,
        host   TEXT COLLATE "C" NOT NULL,
        seen   DOUBLE PRECISION NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class PgJobRows:
    CLAIM_LOCK = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, schema: str = SCHEMA, *, pool_size: int = 4) -> None:
        self.url = url
        self.schema = check_schema(schema)
        self.pool: ConnectionPool[psycopg.Connection[Row]] = open_pool(
            url, self.schema, max(2, pool_size), what="jobs: "
        )
        self._migrate()

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Row]]:
        with self.pool.connection() as db, db.transaction():
            yield db

    def _rows(self, query: str, *params: Any) -> list[Row]:
        with self.pool.connection() as db:
            return db.execute(query.encode(), params or None).fetchall()

    def _migrate(self) -> None:
        with self._tx() as db:
            where = f"{redact(self.url)} (schema {self.schema}): jobs"
            migrate(db, self.schema, MIGRATIONS, where=where)

    def _scrub(self) -> None:
        """Rewrite the jobs table (outside any transaction): deleted rows' bytes leave
        the table and index files."""
        with self.pool.connection() as db:
            db.execute(sql.SQL("VACUUM (FULL) {}").format(sql.Identifier(self.schema, "jobs")))

    # -- workers ----------------------------------------------------------------------
    def add_worker(self, worker: str, pid: int, host: str, seen: float) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO workers VALUES (%s, %s, %s, %s)", (worker, pid, host, seen))

    def remove_worker(self, worker: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM workers WHERE worker=%s", (worker,))

    def workers_running(self) -> list[Row]:
        return self._rows(
            "SELECT w.* FROM workers w WHERE w.worker IN "
            "(SELECT worker FROM jobs WHERE status='running')"
        )

    # -- writing ----------------------------------------------------------------------
    def insert(self, job: dict[str, Any], once: bool) -> str:
        with self._tx() as db:
            if once:
                key = f"pgen-job:{job['tenant']}:{job['kind']}:{job['user_id']}"
                db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
                pending = db.execute(
                    "SELECT job_id FROM jobs WHERE tenant=%s AND kind=%s "
                    "AND user_id IS NOT DISTINCT FROM %s "
                    "AND status IN ('queued', 'running') ORDER BY created, seq LIMIT 1",
                    (job["tenant"], job["kind"], job["user_id"]),
                ).fetchone()
                if pending:
                    return str(pending["job_id"])
            columns = list(job)
            db.execute(
                sql.SQL("INSERT INTO jobs ({}) VALUES ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join(sql.Placeholder() for _ in columns),
                ),
                [job[c] for c in columns],
            )
        return str(job["job_id"])

    def claim(
        self, works: Sequence[str], worker: str, claim: str, lease_until: float
    ) -> Row | None:
        if not works:
            return None
        with self._tx() as db:
            return db.execute(
                "UPDATE jobs SET status='running', worker=%s, claim=%s, lease_until=%s, "
                "attempts=attempts+1, started=COALESCE(started, %s), progress='' "
                "WHERE job_id = (SELECT job_id FROM jobs WHERE status='queued' AND cancel=0 "
                f"AND work = ANY(%s) ORDER BY created, seq LIMIT 1{self.CLAIM_LOCK}) "
                "RETURNING *",
                (worker, claim, lease_until, now_iso(), list(works)),
            ).fetchone()

    def renew(self, claims: Sequence[str], lease_until: float) -> dict[str, bool]:
        if not claims:
            return {}
        with self._tx() as db:
            found = db.execute(
                "UPDATE jobs SET lease_until=%s WHERE status='running' AND claim = ANY(%s) "
                "RETURNING claim, cancel",
                (lease_until, list(claims)),
            ).fetchall()
        return {row["claim"]: bool(row["cancel"]) for row in found}

    def beat(self, worker: str, seen: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE workers SET seen=%s WHERE worker=%s", (seen, worker))

    def progress(
        self, claim: str, text: str, step: int | None, total: int | None, loss: float | None
    ) -> bool:
        with self._tx() as db:
            done = db.execute(
                "UPDATE jobs SET progress=%s, step=COALESCE(%s, step), "
                "total=COALESCE(%s, total), loss=COALESCE(%s, loss) "
                "WHERE claim=%s AND status='running'",
                (text, step, total, loss, claim),
            ).rowcount
        return bool(done)

    def cancel_flag(self, claim: str) -> bool | None:
        rows = self._rows("SELECT cancel FROM jobs WHERE claim=%s AND status='running'", claim)
        return None if not rows else bool(rows[0]["cancel"])

    def finish(self, claim: str, status: str, progress: str, result: Any, error: Any) -> bool:
        text = None if result is None else json.dumps(result, default=str)
        with self._tx() as db:
            done = db.execute(
                "UPDATE jobs SET status=%s, progress=%s, result=%s, error=%s, finished=%s, "
                "worker=NULL, lease_until=NULL WHERE claim=%s AND status='running'",
                (status, progress, text, error, now_iso(), claim),
            ).rowcount
            forgotten = db.execute(
                "DELETE FROM jobs WHERE claim=%s AND forget=1", (claim,)
            ).rowcount
        if forgotten:
            self._scrub()
        return bool(done)

    def release(self, claims: Sequence[str]) -> None:
        if not claims:
            return
        every = list(claims)
        with self._tx() as db:
            forgotten = db.execute(
                "DELETE FROM jobs WHERE forget=1 AND claim = ANY(%s)", (every,)
            ).rowcount
            db.execute(
                "UPDATE jobs SET status='cancelled', progress='cancelled', finished=%s, "
                "worker=NULL, lease_until=NULL WHERE status='running' AND cancel=1 "
                "AND claim = ANY(%s)",
                (now_iso(), every),
            )
            db.execute(
                "UPDATE jobs SET status='queued', worker=NULL, claim=NULL, lease_until=NULL, "
                "attempts=GREATEST(attempts-1, 0), progress='re-queued: its worker stopped' "
                "WHERE status='running' AND claim = ANY(%s)",
                (every,),
            )
        if forgotten:
            self._scrub()

    def expired(self, now: float) -> bool:
        return bool(
            self._rows(
                "SELECT 1 FROM jobs WHERE (status='running' AND COALESCE(lease_until, 0) < %s) "
                "OR (status='queued' AND work IS NULL) LIMIT 1",
                now,
            )
        )

    def expire(self, dead_workers: Sequence[str], now: float, lost: str) -> None:
        with self._tx() as db:
            if dead_workers:
                dead = list(dead_workers)
                db.execute("DELETE FROM workers WHERE worker = ANY(%s)", (dead,))
                db.execute(
                    "UPDATE jobs SET lease_until=0 WHERE status='running' AND worker = ANY(%s)",
                    (dead,),
                )
            gone = "status='running' AND COALESCE(lease_until, 0) < %s"
            forgotten = db.execute(f"DELETE FROM jobs WHERE {gone} AND forget=1", (now,)).rowcount
            db.execute(
                "UPDATE jobs SET status='cancelled', progress='cancelled', finished=%s, "
                f"worker=NULL, claim=NULL WHERE {gone} AND cancel=1",
                (now_iso(), now),
            )
            db.execute(
                "UPDATE jobs SET status='failed', progress='', error=%s, finished=%s, "
                f"worker=NULL, claim=NULL WHERE {gone} AND attempts >= max_attempts",
                (lost, now_iso(), now),
            )
            db.execute(
                "UPDATE jobs SET status='queued', worker=NULL, claim=NULL, lease_until=NULL, "
                f"progress='re-queued: its worker stopped' WHERE {gone}",
                (now,),
            )
        if forgotten:
            self._scrub()

    def cancel(self, tenant: str | None, job_id: str) -> None:
        scope = "" if tenant is None else " AND tenant=%s"
        params: tuple[Any, ...] = (job_id,) if tenant is None else (job_id, tenant)
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status='cancelled', cancel=1, finished=%s, "
                f"progress='cancelled' WHERE job_id=%s AND status='queued'{scope}",
                (now_iso(), *params),
            )
            db.execute(
                f"UPDATE jobs SET cancel=1 WHERE job_id=%s AND status='running'{scope}", params
            )

    def forget_user(self, tenant: str, user_id: str) -> tuple[list[str], int]:
        with self._tx() as db:
            running = [
                row["job_id"]
                for row in db.execute(
                    "UPDATE jobs SET forget=1, cancel=1 WHERE tenant=%s AND user_id=%s "
                    "AND status='running' RETURNING job_id",
                    (tenant, user_id),
                ).fetchall()
            ]
            gone = db.execute(
                "DELETE FROM jobs WHERE tenant=%s AND user_id=%s AND status!='running'",
                (tenant, user_id),
            ).rowcount
        if gone:
            self._scrub()
        return running, int(gone)

    # -- reading ----------------------------------------------------------------------
    def get(self, tenant: str | None, job_id: str) -> Row | None:
        if tenant is None:
            rows = self._rows("SELECT * FROM jobs WHERE job_id=%s", job_id)
        else:
            rows = self._rows("SELECT * FROM jobs WHERE job_id=%s AND tenant=%s", job_id, tenant)
        return rows[0] if rows else None

    def of_tenant(self, tenant: str | None) -> list[Row]:
        if tenant is None:
            return self._rows("SELECT * FROM jobs ORDER BY created, seq")
        return self._rows("SELECT * FROM jobs WHERE tenant=%s ORDER BY created, seq", tenant)

    def running_of(self, tenant: str, user_id: str) -> bool:
        return bool(
            self._rows(
                "SELECT 1 FROM jobs WHERE tenant=%s AND user_id=%s AND status='running'",
                tenant,
                user_id,
            )
        )
