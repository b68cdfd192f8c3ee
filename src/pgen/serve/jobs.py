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

    def shutdown(self) -> None:
        self._runner.shutdown(wait=False, cancel_futures=True)
