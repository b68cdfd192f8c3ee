"""Durable jobs: rows in a file (or a database) that any worker process claims."""

from pathlib import Path

from pgen.run.jobs.queue import LOST, JobControl, Jobs
from pgen.run.jobs.work import Job, JobRun, Work, get_work, register_work, work_names


def jobs_file(home: Path) -> Path:
    """Where the service's job rows live under a pgen home."""
    return home / "service" / "jobs.sqlite"


__all__ = [
    "LOST",
    "Job",
    "JobControl",
    "JobRun",
    "Jobs",
    "Work",
    "get_work",
    "jobs_file",
    "register_work",
    "work_names",
]
