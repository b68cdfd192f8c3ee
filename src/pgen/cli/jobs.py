"""``pgen jobs``: the service's job rows (``<home>/service/jobs.sqlite``, or the Postgres
store's database), read and cancelled here as through ``/jobs``: list, show, cancel. An
operator's view: every tenant's jobs (``--tenant`` narrows it)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pgen.config import Config


def _jobs(config: Config) -> Any:
    from pgen.run.jobs import Jobs
    from pgen.serve.app import jobs_path

    where = jobs_path(config)  # the store's database with a Postgres store, else a file
    if isinstance(where, Path) and not where.is_file():
        raise ValueError(f"no job rows at {where}: no `pgen serve` has run with this home")
    return Jobs(where)


def _line(job: Any) -> str:
    step = "" if job.step is None else f" step {job.step}/{job.total or '?'}"
    loss = "" if job.loss is None else f" loss {job.loss:.4f}"
    return (
        f"{job.job_id}  {job.tenant}  {job.kind}  {job.user_id or '-'}  {job.status}"
        f"  attempt {job.attempts}/{job.max_attempts}{step}{loss}"
    )


def cmd_jobs(args: argparse.Namespace, config: Config) -> None:
    jobs = _jobs(config)
    if args.action == "list":
        found = [
            j for j in jobs.of_tenant(args.tenant) if args.all or j.status in ("queued", "running")
        ]
        for job in found:
            print(_line(job))
        print(f"{len(found)} jobs" + ("" if args.all else " queued or running (--all: every job)"))
        return
    if args.job_id is None:
        raise ValueError(f"pgen jobs {args.action} needs a job id")
    job = jobs.get(args.tenant, args.job_id)
    if args.action == "cancel":
        job = jobs.cancel(args.tenant, args.job_id)
    print(json.dumps({"tenant": job.tenant, **job.as_dict()}, indent=1, default=str))


def register(commands: Any, bench: Any) -> None:
    p = commands.add_parser("jobs", help="the service's jobs: list, show, cancel")
    p.add_argument(
        "action",
        choices=("list", "show", "cancel"),
        help="list the jobs, show one, or cancel one (queued or running)",
    )
    p.add_argument("job_id", nargs="?", help="show / cancel: which job")
    p.add_argument("--tenant", help="only this tenant's jobs")
    p.add_argument("--all", action="store_true", help="list: finished jobs too")
    p.set_defaults(func=cmd_jobs)
