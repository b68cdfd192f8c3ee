"""Works the job tests submit, registered by name, and a worker process's entry point
(``python -m tests.serve.job_works WHERE READY_DIR``): claims those works' jobs until killed.
``WHERE``: the jobs' SQLite file or a Postgres URL; ``READY_DIR/ready-<pid>`` says it runs."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pgen.run.jobs import JobRun, Jobs, register_work

GATES: dict[str, threading.Event] = {}  # in-process works wait on these, by name
SIGNALS: dict[str, threading.Event] = {}  # and set these when they reach a point
RAN: list[str] = []
WORKS = ["test:marker", "test:die", "test:steps"]


def gate(name: str) -> threading.Event:
    return GATES.setdefault(name, threading.Event())


def signal_of(name: str) -> threading.Event:
    return SIGNALS.setdefault(name, threading.Event())


@register_work("test:slow")
def slow(run: JobRun) -> dict[str, Any]:
    run.control("halfway\nthere")
    signal_of(run.args["name"]).set()  # the job's own signal: its progress is on record
    gate(run.args["name"]).wait(120)
    RAN.append(run.args["name"])
    return dict(run.args.get("result", {}))


@register_work("test:fail")
def fail(run: JobRun) -> dict[str, Any]:
    raise ValueError("no interactions to train on")


@register_work("test:loop")
def loop(run: JobRun) -> dict[str, Any]:
    for step in range(1, 10_001):  # a trainer: asks between steps
        run.control.step(step, 10_000, 1.0 / step)
        if step == 5:
            signal_of(run.args["name"]).set()
        time.sleep(0.005)
    return {"finished": True}


@register_work("test:marker")
def marker(run: JobRun) -> dict[str, Any]:
    """Writes ``<dir>/<job id>`` (once: a second run of the job fails) with this pid, then
    waits until ``wait_pids`` distinct processes have written one."""
    folder = Path(run.args["dir"])
    fd = os.open(folder / run.job.job_id, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    deadline = time.monotonic() + 120  # against a hang only
    while len({p.read_text() for p in folder.iterdir()}) < run.args["wait_pids"]:
        assert time.monotonic() < deadline, "the other worker never ran a job"
        time.sleep(0.05)
    return {"pid": os.getpid()}


@register_work("test:die")
def die(run: JobRun) -> dict[str, Any]:
    """Killed (-9) on the attempts named in ``die_on``; otherwise done."""
    Path(run.args["dir"], f"attempt-{run.job.attempts}").write_text(str(os.getpid()))
    if run.job.attempts in run.args["die_on"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"attempt": run.job.attempts, "pid": os.getpid()}


@register_work("test:steps")
def steps(run: JobRun) -> dict[str, Any]:
    """Steps with a loss, until cancelled; ``<dir>/started-<pid>`` says it runs."""
    Path(run.args["dir"], f"started-{os.getpid()}").write_text("")
    for step in range(1, 1_000_000):
        run.control.step(step, 1_000_000, 2.0 / step, force=step == 3)
        time.sleep(0.01)
    return {}


def main(where: str, ready: str) -> None:
    place: Path | str = where if "://" in where else Path(where)
    Jobs(place, lease_s=float(os.environ.get("LEASE_S", "60"))).start(works=WORKS)
    Path(ready, f"ready-{os.getpid()}").write_text("")
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
