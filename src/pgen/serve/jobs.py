"""The service's jobs: durable rows (``pgen.run.jobs``) at ``<home>/service/jobs.sqlite``,
claimed by the workers of every ``pgen serve`` process on that file, and the named works
they run (``train``: a checked TrainRequest's fields; ``recommender``).

A job is its tenant's: another tenant's job id answers "not found".
"""

from __future__ import annotations

import json
from typing import Any

from pgen.run.jobs import LOST, Job, JobControl, JobRun, Jobs, register_work
from pgen.training.progress import TrainStep
from pgen.training.registry import TrainRequest

__all__ = ["LOST", "Job", "JobControl", "Jobs", "train_args"]


def train_args(request: TrainRequest) -> dict[str, Any]:
    """A checked request as the ``train`` work's JSON arguments (settings: the method's
    defaults; the service takes none)."""
    return {
        "user_id": request.user_id,
        "method": request.method,
        "subject": request.subject,
        "cohort": list(request.cohort),
        "steps": request.steps,
    }


@register_work("train")
def train_work(run: JobRun) -> dict[str, Any]:
    args = run.args
    control = run.control
    control(f"training {args['method']}")

    def on_step(at: TrainStep) -> None:
        # The record is written at most every POLL_S; the last step always, so a finished
        # job's record ends at its total. A cancel asked meanwhile raises here.
        control.step(at.step, at.total, at.loss, force=at.step >= at.total)

    request = TrainRequest(
        args["user_id"],
        args["method"],
        args.get("subject"),
        tuple(args.get("cohort") or ()),
        None,
        args.get("steps"),
        should_stop=control.should_stop,
        on_step=on_step,
    )
    with run.host.tenants.lease(run.job.tenant) as held:  # not closed by the bound meanwhile
        result = held.train(request, checked=True)
    found = {"method": result.method, "seconds": result.seconds, "meta": result.meta}
    plain: dict[str, Any] = json.loads(json.dumps(found, default=str))  # paths, numpy: text
    return plain


@register_work("recommender")
def recommender_work(run: JobRun) -> dict[str, Any]:
    with run.host.tenants.lease(run.job.tenant) as held:
        # The recommender reports progress between epochs: a cancel stops it there.
        held.train_recommender(run.args["model"], run.args.get("params"), progress=run.control)
    return {"model": run.args["model"]}
