"""Long work (training) as jobs: ``202`` with a job id, then status and cancellation.

Job records live in a SQLite file (``<home>/service/jobs.sqlite``): a restart, or another
worker process, still answers a job's status. Each process runs its own jobs one at a
time on a thread of its own, so training never starves requests of the model thread's
time more than one job's worth. A job that was queued or running in a process that is
gone (killed, restarted) is reported ``failed``, "interrupted by a restart", never left
running. A job is its tenant's: another tenant's job id answers "not found".

Cancelling a queued job stops it from starting; cancelling a running one asks it to stop
(``JobControl.should_stop``, which trainers ask between steps): it ends ``cancelled``
with nothing saved. Work that cannot stop midway is submitted not ``cancellable`` and
refuses (409) while it runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pgen.context.sqlite import Database
from pgen.serve.errors import ApiError, NotFound
from pgen.training.stopping import TrainingCancelled

Work = Callable[["JobControl"], dict[str, Any]]
ACTIVE = ("queued", "running")
INTERRUPTED = "interrupted by a restart: the service stopped before the job ended; submit it again"
HEARTBEAT_S = 10.0  # a process says it is alive this often
STALE_S = 60.0  # a process silent this long (on another host) is taken for gone
POLL_S = 0.5  # how often a running job looks for a cancel asked by another process

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, kind TEXT NOT NULL, user_id TEXT,
    status TEXT NOT NULL, progress TEXT NOT NULL DEFAULT '', created TEXT NOT NULL,
    started TEXT, finished TEXT, result TEXT, error TEXT, owner TEXT NOT NULL,
    cancellable INTEGER NOT NULL, cancel INTEGER NOT NULL DEFAULT 0,
    forget INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant, created);
CREATE TABLE IF NOT EXISTS owners (
    owner TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, seen REAL NOT NULL)
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass(frozen=True)
class Job:
    job_id: str
    tenant: str
    kind: str
    user_id: str | None
    status: str  # queued, running, succeeded, failed, cancelled
    progress: str
    created: str
    started: str | None
    finished: str | None
    result: dict[str, Any] | None
    error: str | None
    cancellable: bool
    cancel_requested: bool

    @classmethod
    def of_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            row["job_id"],
            row["tenant"],
            row["kind"],
            row["user_id"],
            row["status"],
            row["progress"],
            row["created"],
            row["started"],
            row["finished"],
            None if row["result"] is None else json.loads(row["result"]),
            row["error"],
            bool(row["cancellable"]),
            bool(row["cancel"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "user_id": self.user_id,
            "status": self.status,
            "progress": self.progress,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "result": self.result,
            "error": self.error,
            "cancellable": self.cancellable,
            "cancel_requested": self.cancel_requested,
        }


class _JobFile(Database):
    """The jobs' SQLite file: the store's connection discipline (per-thread connections,
    WAL, ``BEGIN IMMEDIATE`` with retry), so worker processes share it safely."""

    def _migrate(self) -> None:
        with self.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        return self._rows(sql, *params)


class JobControl:
    """What a job's work gets: ``control(message)`` reports progress (and stops the work
    with ``TrainingCancelled`` once a cancel is asked); ``should_stop()`` for trainers."""

    def __init__(self, jobs: Jobs, job_id: str) -> None:
        self._jobs = jobs
        self.job_id = job_id
        self.event = threading.Event()
        self._checked = 0.0
        self._written = 0.0

    def should_stop(self) -> bool:
        if self.event.is_set():
            return True
        if time.monotonic() - self._checked >= POLL_S:  # a cancel from another process
            self._checked = time.monotonic()
            rows = self._jobs.db.rows("SELECT cancel FROM jobs WHERE job_id=?", self.job_id)
            if not rows or rows[0]["cancel"]:
                self.event.set()
        return self.event.is_set()

    def __call__(self, message: str) -> None:
        if self.should_stop():
            raise TrainingCancelled("the job was cancelled")
        if time.monotonic() - self._written >= POLL_S:  # progress: not a write per step
            self._written = time.monotonic()
            text = " ".join(str(message).split())[:300]
            with self._jobs.db.transaction() as db:
                db.execute("UPDATE jobs SET progress=? WHERE job_id=?", (text, self.job_id))


class Jobs:
    def __init__(self, path: Path) -> None:
        self.db = _JobFile(path)
        self.owner = uuid.uuid4().hex  # this process's run of the service
        self._host = socket.gethostname()
        self._controls: dict[str, JobControl] = {}
        self._lock = threading.Lock()
        self._runner = ThreadPoolExecutor(1, thread_name_prefix="pgen-jobs")
        self._stopped = threading.Event()
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO owners VALUES (?, ?, ?, ?)",
                (self.owner, os.getpid(), self._host, time.time()),
            )
        self._reap()
        self._beat = threading.Thread(target=self._heartbeat, name="pgen-jobs-beat", daemon=True)
        self._beat.start()

    # -- processes that are gone ------------------------------------------------------
    def _heartbeat(self) -> None:
        while not self._stopped.wait(HEARTBEAT_S):
            try:
                with self.db.transaction() as db:
                    db.execute("UPDATE owners SET seen=? WHERE owner=?", (time.time(), self.owner))
            except Exception:  # a closed file at shutdown, a busy disk: the next beat retries
                logging.getLogger("pgen").debug("jobs heartbeat failed", exc_info=True)

    def _gone(self, row: sqlite3.Row) -> bool:
        if row["owner"] == self.owner:
            return False
        if row["host"] == self._host and (row["pid"] == os.getpid() or not _alive(row["pid"])):
            return True  # an earlier run of this process (same pid), or a dead one
        return bool(time.time() - row["seen"] > STALE_S)

    def _reap(self) -> None:
        """Active jobs of processes that are gone: failed, interrupted by a restart."""
        owners = self.db.rows(
            "SELECT o.* FROM owners o WHERE o.owner IN "
            "(SELECT DISTINCT owner FROM jobs WHERE status IN ('queued', 'running'))"
        )
        gone = [row["owner"] for row in owners if self._gone(row)]
        orphans = self.db.rows(
            "SELECT DISTINCT owner FROM jobs WHERE status IN ('queued', 'running') "
            "AND owner NOT IN (SELECT owner FROM owners)"
        )
        gone += [row["owner"] for row in orphans]
        if not gone:
            return
        with self.db.transaction() as db:
            for owner in gone:
                db.execute(
                    "UPDATE jobs SET status='failed', error=?, finished=? "
                    "WHERE owner=? AND status IN ('queued', 'running')",
                    (INTERRUPTED, _now(), owner),
                )
                db.execute("DELETE FROM jobs WHERE owner=? AND forget=1", (owner,))
                db.execute("DELETE FROM owners WHERE owner=?", (owner,))

    # -- running ----------------------------------------------------------------------
    def submit(
        self,
        tenant: str,
        kind: str,
        user_id: str | None,
        work: Work,
        *,
        cancellable: bool = True,
        once: bool = False,
    ) -> Job:
        """A job, queued. ``once``: none if a job of this kind for this user is queued or
        running already (that one is answered instead), across every worker process."""
        job_id = uuid.uuid4().hex
        with self.db.transaction() as db:
            pending = (
                once
                and db.execute(
                    "SELECT job_id FROM jobs WHERE tenant=? AND kind=? AND user_id IS ? "
                    "AND status IN ('queued', 'running') ORDER BY created LIMIT 1",
                    (tenant, kind, user_id),
                ).fetchone()
            )
            if pending:
                return self.get(tenant, pending[0])
            db.execute(
                "INSERT INTO jobs (job_id, tenant, kind, user_id, status, created, owner, "
                "cancellable) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                (job_id, tenant, kind, user_id, _now(), self.owner, int(cancellable)),
            )
        control = JobControl(self, job_id)
        with self._lock:
            self._controls[job_id] = control
        self._runner.submit(self._run, control, work)
        return self.get(tenant, job_id)

    def _run(self, control: JobControl, work: Work) -> None:
        try:
            with self.db.transaction() as db:  # only a job still queued starts
                claimed = db.execute(
                    "UPDATE jobs SET status='running', started=? "
                    "WHERE job_id=? AND status='queued' AND cancel=0",
                    (_now(), control.job_id),
                ).rowcount
            if claimed:
                self._finish(control.job_id, self._outcome(control, work))
        except Exception:  # the jobs file closed under a shutdown: the next run reaps it
            logging.getLogger("pgen").warning("job %s not recorded", control.job_id, exc_info=True)
        finally:
            with self._lock:
                self._controls.pop(control.job_id, None)

    @staticmethod
    def _outcome(control: JobControl, work: Work) -> dict[str, Any]:
        try:
            result = work(control)
        except TrainingCancelled:
            return {"status": "cancelled", "progress": "cancelled", "result": None, "error": None}
        except Exception as error:
            message = " ".join(str(error).split())
            return {"status": "failed", "progress": "", "result": None, "error": message}
        return {"status": "succeeded", "progress": "done", "result": result, "error": None}

    def _finish(self, job_id: str, outcome: dict[str, Any]) -> None:
        result = None if outcome["result"] is None else json.dumps(outcome["result"], default=str)
        with self.db.transaction() as db:
            # Only a job still running: a shutdown may have reported it interrupted.
            db.execute(
                "UPDATE jobs SET status=?, progress=?, result=?, error=?, finished=? "
                "WHERE job_id=? AND status='running'",
                (outcome["status"], outcome["progress"], result, outcome["error"], _now(), job_id),
            )
            db.execute("DELETE FROM jobs WHERE job_id=? AND forget=1", (job_id,))

    # -- reading ----------------------------------------------------------------------
    def get(self, tenant: str, job_id: str) -> Job:
        self._reap()
        rows = self.db.rows("SELECT * FROM jobs WHERE job_id=? AND tenant=?", job_id, tenant)
        if not rows:
            raise NotFound(job_id)
        return Job.of_row(rows[0])

    def of_tenant(self, tenant: str) -> list[Job]:
        self._reap()
        rows = self.db.rows("SELECT * FROM jobs WHERE tenant=? ORDER BY created, rowid", tenant)
        return [Job.of_row(row) for row in rows]

    # -- stopping ---------------------------------------------------------------------
    def cancel(self, tenant: str, job_id: str) -> Job:
        """A queued job is cancelled; a running one is asked to stop (it ends
        ``cancelled`` when its work next asks), unless it cannot stop midway (409)."""
        job = self.get(tenant, job_id)
        with self.db.transaction() as db:
            if job.status == "queued":
                db.execute(
                    "UPDATE jobs SET status='cancelled', cancel=1, finished=? "
                    "WHERE job_id=? AND status='queued'",
                    (_now(), job_id),
                )
            elif job.status == "running":
                if not job.cancellable:
                    raise ApiError(409, "conflict", "this job cannot stop midway; it is running")
                db.execute("UPDATE jobs SET cancel=1 WHERE job_id=?", (job_id,))
        self._signal([job_id])
        return self.get(tenant, job_id)

    def _signal(self, job_ids: list[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                if job_id in self._controls:
                    self._controls[job_id].event.set()

    def forget_user(self, tenant: str, user_id: str) -> int:
        """Delete-user for jobs: the user's queued and finished job records go now (they
        name the user and their results); a running one is asked to stop and goes when
        it ends. Returns how many records went now."""
        with self.db.transaction() as db:
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
        self._signal(running)
        return int(gone)

    def wait_forgotten(self, tenant: str, user_id: str, seconds: float) -> bool:
        """Wait (up to ``seconds``) until none of the user's jobs runs: delete-user lets a
        stopping job end before the user's rows and files go. True when none runs."""
        deadline = time.monotonic() + seconds
        while True:
            self._reap()
            rows = self.db.rows(
                "SELECT 1 FROM jobs WHERE tenant=? AND user_id=? AND status='running'",
                tenant,
                user_id,
            )
            if not rows:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def shutdown(self) -> None:
        """This process's queued and running jobs are told to stop and reported
        interrupted (a running one's own end, afterwards, is not recorded)."""
        self._stopped.set()
        self._runner.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for control in self._controls.values():
                control.event.set()
        with self.db.transaction() as db:
            db.execute(
                "UPDATE jobs SET status='failed', error=?, finished=? "
                "WHERE owner=? AND status IN ('queued', 'running')",
                (INTERRUPTED, _now(), self.owner),
            )
            db.execute("DELETE FROM jobs WHERE owner=? AND forget=1", (self.owner,))
            db.execute("DELETE FROM owners WHERE owner=?", (self.owner,))
