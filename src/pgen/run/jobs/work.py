"""Named work for jobs: a job row names a registered function and its JSON arguments, so
any process that registered the same name (any replica of the service, a worker) can run
it; a Python closure could only run in the process that made it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgen.errors import InvalidRequest

if TYPE_CHECKING:
    from pgen.run.jobs.queue import JobControl


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
    work: str | None = None
    args: dict[str, Any] | None = None
    attempts: int = 0
    max_attempts: int = 0
    step: int | None = None
    total: int | None = None
    loss: float | None = None

    @classmethod
    def of_row(cls, row: Any) -> Job:
        """``row``: a ``sqlite3.Row`` or a Postgres dict row, read by column name."""
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
            row["work"],
            None if row["args"] is None else json.loads(row["args"]),
            int(row["attempts"]),
            int(row["max_attempts"]),
            row["step"],
            row["total"],
            row["loss"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "user_id": self.user_id,
            "status": self.status,
            "progress": self.progress,
            "step": self.step,
            "total": self.total,
            "loss": self.loss,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "result": self.result,
            "error": self.error,
            "cancellable": self.cancellable,
            "cancel_requested": self.cancel_requested,
        }


@dataclass(frozen=True)
class JobRun:
    """What a job's work gets: the job (tenant, user), its ``args``, ``control`` (progress
    and stopping) and ``host``: what the worker's process was started with (the service)."""

    job: Job
    args: dict[str, Any]
    control: JobControl
    host: Any


Work = Callable[[JobRun], dict[str, Any]]
_WORKS: dict[str, Work] = {}


def register_work(name: str) -> Callable[[Work], Work]:
    def add(work: Work) -> Work:
        if _WORKS.get(name, work) is not work:
            raise ValueError(f"job work {name!r} is registered already")
        _WORKS[name] = work
        return work

    return add


def get_work(name: str) -> Work:
    try:
        return _WORKS[name]
    except KeyError:
        known = ", ".join(sorted(_WORKS)) or "none"
        raise InvalidRequest(f"no job work named {name!r} (registered: {known})") from None


def work_names() -> list[str]:
    return sorted(_WORKS)
