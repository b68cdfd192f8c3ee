"""Durable jobs across processes: worker processes (``python -m tests.serve.job_works``)
on one jobs file, or one Postgres database (each test runs on both), claim disjoint
jobs; a worker killed (-9) mid-job leaves the job to another, up to the job's attempts; a cancel reaches a job running in another process,
and its progress (step, total, loss) is read from the rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgen.run.jobs import LOST, Jobs
from tests.serve import job_works
from tests.serve.conftest import JobRowsAt

ROOT = Path(__file__).resolve().parents[2]
assert job_works.WORKS  # the works a submitter names are registered here too


class Workers:
    def __init__(self, where: Path | str, ready: Path) -> None:
        self.path = where  # a SQLite file or a Postgres URL
        self.ready = ready
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, lease_s: float = 60) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
        env["LEASE_S"] = str(lease_s)
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.serve.job_works", str(self.path), str(self.ready)],
            cwd=ROOT,
            env=env,
        )
        self.processes.append(process)
        ready = self.ready / f"ready-{process.pid}"
        deadline = time.monotonic() + 120  # against a hang only
        # Ready, or ended already: a worker may claim a job that kills it before it says so.
        while not ready.exists() and process.poll() is None:
            assert time.monotonic() < deadline, "the worker process never started"
            time.sleep(0.05)
        return process


@pytest.fixture
def workers(job_rows_at: JobRowsAt, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes on the jobs' rows: a SQLite file, or the real Postgres server."""
    found = Workers(job_rows_at.where, tmp_path)
    yield found
    for process in found.processes:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def wait_until(jobs: Jobs, job_id: str, check: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 120  # against a hang only
    while True:
        job = jobs.get(None, job_id).as_dict()
        if check(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_two_worker_processes_claim_disjoint_jobs(workers: Workers, tmp_path: Path) -> None:
    jobs = Jobs(workers.path)  # submits and reads only: no worker here
    marks = tmp_path / "marks"
    marks.mkdir()
    ids = [
        jobs.submit("acme", "marker", "u", "test:marker", {"dir": str(marks), "wait_pids": 2})
        for _ in range(6)
    ]
    pids = {workers.start().pid, workers.start().pid}
    ended = [
        wait_until(
            jobs, j.job_id, lambda job: job["status"] != "queued" and job["status"] != "running"
        )
        for j in ids
    ]
    # Each job ran once (a second run would fail creating its marker), in one of the two.
    assert [job["status"] for job in ended] == ["succeeded"] * 6
    assert {job["result"]["pid"] for job in ended} == pids
    assert sorted(p.name for p in marks.iterdir()) == sorted(j.job_id for j in ids)
    assert all(job["attempts"] == 1 for job in ended)


def test_a_killed_workers_job_is_run_by_another_and_attempts_are_bounded(
    workers: Workers, tmp_path: Path
) -> None:
    jobs = Jobs(workers.path)
    marks = tmp_path / "marks"
    marks.mkdir()
    # Dies on its first attempt: the second worker runs it again, to its end.
    job = jobs.submit("acme", "die", "u", "test:die", {"dir": str(marks), "die_on": [1]})
    first = workers.start()
    assert first.wait(120) == -signal.SIGKILL  # killed itself mid-job
    second = workers.start()
    done = wait_until(jobs, job.job_id, lambda j: j["status"] == "succeeded")
    assert done["result"] == {"attempt": 2, "pid": second.pid} and done["attempts"] == 2
    # Dies on every attempt: after its two, it fails, naming why; no third run.
    doomed = jobs.submit(
        "acme", "die", "v", "test:die", {"dir": str(marks / "d"), "die_on": [1, 2]}, max_attempts=2
    )
    (marks / "d").mkdir()
    assert second.wait(120) == -signal.SIGKILL
    assert workers.start().wait(120) == -signal.SIGKILL
    failed = wait_until(jobs, doomed.job_id, lambda j: j["status"] == "failed")
    assert (failed["error"], failed["attempts"]) == (LOST, 2)
    assert sorted(p.name for p in (marks / "d").iterdir()) == ["attempt-1", "attempt-2"]


def test_cancel_and_progress_reach_a_job_in_another_process(
    workers: Workers, tmp_path: Path
) -> None:
    jobs = Jobs(workers.path)
    job = jobs.submit("acme", "steps", "u", "test:steps", {"dir": str(tmp_path)})
    worker = workers.start()
    seen = wait_until(jobs, job.job_id, lambda j: (j["step"] or 0) >= 3)
    assert seen["status"] == "running" and seen["total"] == 1_000_000
    assert seen["loss"] == pytest.approx(2.0 / seen["step"])
    assert (tmp_path / f"started-{worker.pid}").exists()
    jobs.cancel("acme", job.job_id)
    stopped = wait_until(jobs, job.job_id, lambda j: j["status"] != "running")
    assert stopped["status"] == "cancelled" and stopped["result"] is None


def test_an_expired_lease_requeues_a_job_whose_worker_went_silent(
    workers: Workers, tmp_path: Path
) -> None:
    """A worker on another host cannot be checked by pid: its lease is what counts. A
    stopped (SIGSTOP) worker renews nothing; once its lease runs out the job is queued
    again and another worker runs it; the silent one's late end is not recorded."""
    jobs = Jobs(workers.path)
    job = jobs.submit("acme", "steps", "u", "test:steps", {"dir": str(tmp_path)})
    frozen = workers.start(lease_s=2)
    wait_until(jobs, job.job_id, lambda j: (j["step"] or 0) >= 3)
    frozen.send_signal(signal.SIGSTOP)
    try:
        other = workers.start(lease_s=2)
        wait_until(jobs, job.job_id, lambda j: j["attempts"] == 2 and j["status"] == "running")
        assert (tmp_path / f"started-{other.pid}").exists()
    finally:
        frozen.send_signal(signal.SIGCONT)
    jobs.cancel("acme", job.job_id)
    stopped = wait_until(jobs, job.job_id, lambda j: j["status"] != "running")
    assert stopped["status"] == "cancelled" and stopped["attempts"] == 2
