"""Durable jobs: rows any worker claims, held under a lease that a heartbeat renews.

``Jobs(where)`` reads and writes the rows (submit, status, cancel, forget) in a SQLite file
or, given a ``postgresql://`` URL, in Postgres (backends.py); ``start(host, workers)``
also runs this process's workers: threads that claim queued jobs of the works registered
here, one at a time each. A worker that dies (kill -9, a lost host) stops
renewing its lease: once it runs out (or at once, when the worker's pid on this host is
gone) the job is queued again for any worker, up to its ``max_attempts``, then fails
naming why. Whatever the dead worker still writes is not recorded (its claim is gone).

A cancel sets the row's flag: a queued job never starts, a running one is told through
``JobControl.should_stop`` (trainers ask between steps) and ends ``cancelled``, nothing
saved. Work that cannot stop midway is submitted not ``cancellable`` and refuses (409).
Clocks: leases are wall-clock seconds, so workers on several hosts need synced clocks.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pgen.errors import Conflict, NotFound
from pgen.run.jobs.backends import open_job_rows
from pgen.run.jobs.rows import now_iso
from pgen.run.jobs.work import Job, JobRun, get_work, work_names
from pgen.training.stopping import TrainingCancelled

LEASE_S = 60.0  # a running job's worker must renew its lease within this
POLL_S = 0.5  # an idle worker looks for queued jobs this often; a job for its cancel flag
MAX_ATTEMPTS = 3
LOST = "its worker stopped (killed or lost) on every attempt; submit it again"
log = logging.getLogger("pgen")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class JobControl:
    """A running job's line back: ``control(message)`` or ``control.step(...)`` records
    progress (and raises ``TrainingCancelled`` once a cancel is asked); ``should_stop()``
    is what trainers ask between steps."""

    def __init__(self, jobs: Jobs, job_id: str, claim: str) -> None:
        self._jobs = jobs
        self.job_id = job_id
        self.claim = claim
        self.event = threading.Event()
        self._checked = 0.0
        self._written = 0.0

    def should_stop(self) -> bool:
        if not self.event.is_set() and time.monotonic() - self._checked >= POLL_S:
            self._checked = time.monotonic()
            if self._jobs.rows.cancel_flag(self.claim) in (True, None):  # asked, or lost
                self.event.set()
        return self.event.is_set()

    def __call__(self, message: str) -> None:
        self.step(message=message)

    def step(
        self,
        step: int | None = None,
        total: int | None = None,
        loss: float | None = None,
        *,
        message: str | None = None,
        force: bool = False,
    ) -> None:
        if self.should_stop():
            raise TrainingCancelled("the job was cancelled")
        if force or time.monotonic() - self._written >= POLL_S:  # not a write per step
            self._written = time.monotonic()
            if message is None:
                parts = [f"step {step}" + (f"/{total}" if total else "")] if step else []
                message = ", ".join([*parts, *([f"loss {loss:.4f}"] if loss is not None else [])])
            text = " ".join(str(message).split())[:300]
            if not self._jobs.rows.progress(self.claim, text, step, total, loss):
                self.event.set()


class Jobs:
    def __init__(self, where: Path | str, *, lease_s: float = LEASE_S) -> None:
        """``where``: a SQLite file, or a ``postgresql://`` URL (the store's database)."""
        self.rows = open_job_rows(where)
        self.lease_s = lease_s
        self.worker = uuid.uuid4().hex  # this process's worker identity
        self._host = socket.gethostname()
        self._controls: dict[str, JobControl] = {}  # by claim
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._serving: Any = None
        self._works: list[str] = []

    # -- workers ----------------------------------------------------------------------
    def start(self, host: Any = None, workers: int = 1, works: list[str] | None = None) -> Jobs:
        """Run ``workers`` threads claiming jobs of ``works`` (default: every registered
        work); ``host`` is handed to each work (the service)."""
        self._serving = host
        self._works = list(works if works is not None else work_names())
        self.rows.add_worker(self.worker, os.getpid(), self._host, time.time())
        self._spawn(self._heartbeat, "pgen-jobs-beat")
        for n in range(workers):
            self._spawn(self._work_loop, f"pgen-jobs-{n}")
        return self

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _heartbeat(self) -> None:
        while not self._stopped.wait(self.lease_s / 4):
            try:
                self.rows.beat(self.worker, time.time())
                with self._lock:
                    controls = dict(self._controls)
                held = self.rows.renew(list(controls), time.time() + self.lease_s)
                for claim, control in controls.items():
                    if held.get(claim, True):  # cancel asked, or the claim lost
                        control.event.set()
            except Exception:  # a closed file at shutdown, a busy disk: the next beat retries
                log.debug("jobs heartbeat failed", exc_info=True)

    def _work_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                ran = self.run_one()
            except Exception:  # the file closed under a shutdown, a busy disk
                log.warning("jobs worker: claim failed", exc_info=True)
                ran = False
            if not ran:
                self._wake.wait(POLL_S)
                self._wake.clear()

    def run_one(self) -> bool:
        """Claim one queued job and run it to its end here. False when none was queued."""
        self.reap()
        claim = uuid.uuid4().hex
        row = self.rows.claim(self._works, self.worker, claim, time.time() + self.lease_s)
        if row is None:
            return False
        job = Job.of_row(row)
        control = JobControl(self, job.job_id, claim)
        with self._lock:
            self._controls[claim] = control
        try:
            run = JobRun(job, job.args or {}, control, self._serving)
            status, progress, result, error = self._outcome(run)
            if not self._stopped.is_set():  # stopping: release() re-queued it already
                self.rows.finish(claim, status, progress, result, error)
        finally:
            with self._lock:
                self._controls.pop(claim, None)
        return True

    @staticmethod
    def _outcome(run: JobRun) -> tuple[str, str, Any, str | None]:
        try:
            result = get_work(run.job.work or "")(run)
        except TrainingCancelled:
            return "cancelled", "cancelled", None, None
        except Exception as error:
            log.info("job %s failed", run.job.job_id, exc_info=True)
            return "failed", "", None, " ".join(str(error).split()) or type(error).__name__
        return "succeeded", "done", result, None

    # -- workers that are gone ----------------------------------------------------------
    def reap(self) -> None:
        """Running jobs whose worker is gone: re-queued (or failed after the last attempt)."""
        dead = [
            row["worker"]
            for row in self.rows.workers_running()
            if row["host"] == self._host and not _alive(row["pid"])
        ]
        if dead or self.rows.expired(time.time()):
            self.rows.expire(dead, time.time(), LOST)

    # -- submitting and reading -----------------------------------------------------------
    def submit(
        self,
        tenant: str,
        kind: str,
        user_id: str | None,
        work: str,
        args: dict[str, Any] | None = None,
        *,
        cancellable: bool = True,
        once: bool = False,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> Job:
        """A job, queued: ``work`` (a registered name) with JSON ``args``. ``once``: none if
        a job of this kind for this user is queued or running already (that one is
        answered instead), across every worker."""
        get_work(work)  # an unknown name fails here, not in a worker
        row = {
            "job_id": uuid.uuid4().hex,
            "tenant": tenant,
            "kind": kind,
            "user_id": user_id,
            "status": "queued",
            "created": now_iso(),
            "owner": self.worker,
            "cancellable": int(cancellable),
            "work": work,
            "args": json.dumps(args or {}),
            "max_attempts": max_attempts,
        }
        job_id = self.rows.insert(row, once)
        self._wake.set()
        return self.get(tenant, job_id)

    def get(self, tenant: str | None, job_id: str) -> Job:
        """``tenant`` None: any tenant's (the operator's ``pgen jobs``)."""
        self.reap()
        row = self.rows.get(tenant, job_id)
        if row is None:
            raise NotFound(job_id)
        return Job.of_row(row)

    def of_tenant(self, tenant: str | None) -> list[Job]:
        self.reap()
        return [Job.of_row(row) for row in self.rows.of_tenant(tenant)]

    # -- stopping ---------------------------------------------------------------------
    def cancel(self, tenant: str | None, job_id: str) -> Job:
        """A queued job is cancelled; a running one is asked to stop (it ends
        ``cancelled`` when its work next asks), unless it cannot stop midway (409)."""
        job = self.get(tenant, job_id)
        if job.status == "running" and not job.cancellable:
            raise Conflict("this job cannot stop midway; it is running")
        self.rows.cancel(tenant, job_id)
        self._signal([job_id])
        return self.get(tenant, job_id)

    def _signal(self, job_ids: list[str]) -> None:
        with self._lock:
            for control in self._controls.values():
                if control.job_id in job_ids:
                    control.event.set()

    def forget_user(self, tenant: str, user_id: str) -> int:
        """Delete-user for jobs: the user's queued and finished job records go now (they
        name the user and their results); a running one is asked to stop and goes when
        it ends. Returns how many records went now."""
        running, gone = self.rows.forget_user(tenant, user_id)
        self._signal(running)
        return gone

    def wait_forgotten(self, tenant: str, user_id: str, seconds: float) -> bool:
        """Wait (up to ``seconds``) until none of the user's jobs runs: delete-user lets a
        stopping job end before the user's rows and files go. True when none runs."""
        deadline = time.monotonic() + seconds
        while True:
            self.reap()
            if not self.rows.running_of(tenant, user_id):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def shutdown(self) -> None:
        """This process's workers stop: their running jobs go back to the queue for
        another worker (told to stop here; their own end is not recorded)."""
        self._stopped.set()
        self._wake.set()
        with self._lock:
            controls = dict(self._controls)
        for control in controls.values():
            control.event.set()
        try:
            self.rows.release(list(controls))
            self.rows.remove_worker(self.worker)
        except Exception:
            log.warning("jobs: could not release this worker's jobs", exc_info=True)
