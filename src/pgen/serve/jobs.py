"""Long work (training) as jobs: ``202`` with a job id, then status and cancellation.

Jobs run one at a time on a thread of their own, so training never starves requests of
the model thread's time more than one job's worth. They live in this process's memory:
a restart forgets them (their artifacts, once written, stay in the store). A job is its
tenant's: another tenant's job id answers "not found".
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pgen.serve.errors import ApiError, NotFound

Work = Callable[[Callable[[str], None]], dict[str, Any]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Job:
    job_id: str
    tenant: str
    kind: str
    user_id: str | None
    status: str = "queued"  # queued, running, succeeded, failed, cancelled
    progress: str = ""
    created: str = field(default_factory=_now)
    finished: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    future: Future[None] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "user_id": self.user_id,
            "status": self.status,
            "progress": self.progress,
            "created": self.created,
            "finished": self.finished,
            "result": self.result,
            "error": self.error,
        }


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._runner = ThreadPoolExecutor(1, thread_name_prefix="pgen-jobs")
        self._forgotten: set[tuple[str, str]] = set()  # (tenant, user) deleted mid-job

    def submit(self, tenant: str, kind: str, user_id: str | None, work: Work) -> Job:
        job = Job(uuid.uuid4().hex, tenant, kind, user_id)
        with self._lock:
            self._jobs[job.job_id] = job
            job.future = self._runner.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Work) -> None:
        with self._lock:
            if job.status != "queued":
                return
            job.status = "running"

        def progress(message: str) -> None:
            job.progress = " ".join(str(message).split())[:300]

        try:
            result = work(progress)
        except Exception as error:
            outcome: dict[str, Any] = {"status": "failed", "error": " ".join(str(error).split())}
        else:
            outcome = {"status": "succeeded", "result": result, "progress": "done"}
        with self._lock:
            for name, value in outcome.items():
                setattr(job, name, value)
            job.finished = _now()
            if job.user_id is not None and (job.tenant, job.user_id) in self._forgotten:
                del self._jobs[job.job_id]  # its user was deleted while it ran

    def get(self, tenant: str, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.tenant != tenant:
            raise NotFound(job_id)
        return job

    def of_tenant(self, tenant: str) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.tenant == tenant]

    def cancel(self, tenant: str, job_id: str) -> Job:
        """A queued job is cancelled; a running one cannot be (trainers take no stop
        signal, and an adapter half-written is worse than one finished)."""
        job = self.get(tenant, job_id)
        with self._lock:
            if job.status == "queued":
                job.status = "cancelled"
                job.finished = _now()
            elif job.status == "running":
                raise ApiError(409, "conflict", "the job is running and cannot be cancelled")
        return job

    def forget_user(self, tenant: str, user_id: str) -> int:
        """Delete-user for jobs: the user's queued jobs are cancelled and, with finished
        ones, forgotten (their records name the user and their results); a running one is
        forgotten when it ends. Returns how many records went now."""
        with self._lock:
            mine = [j for j in self._jobs.values() if (j.tenant, j.user_id) == (tenant, user_id)]
            for job in mine:
                if job.status == "running":
                    self._forgotten.add((tenant, user_id))
                    continue
                job.status = "cancelled"  # a queued job that starts later does nothing
                del self._jobs[job.job_id]
            return sum(job.status != "running" for job in mine)

    def shutdown(self) -> None:
        self._runner.shutdown(wait=False, cancel_futures=True)
