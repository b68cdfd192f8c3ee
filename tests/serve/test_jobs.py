"""Jobs: queued ones cancel, running ones refuse to, failures are reported, and a job is
only ever its own tenant's."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pgen.serve.errors import ApiError, NotFound
from pgen.serve.jobs import Jobs


def wait_for(jobs: Jobs, tenant: str, job_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = jobs.get(tenant, job_id).as_dict()
        if job["status"] == status:
            return job
        time.sleep(0.01)
    raise AssertionError(f"{job_id} never {status}")


def test_queued_cancel_running_refuse_failures_reported() -> None:
    jobs = Jobs()
    release = threading.Event()

    def slow(progress: Any) -> dict[str, Any]:
        progress("halfway\nthere")
        release.wait(10)
        return {"done": True}

    def broken(progress: Any) -> dict[str, Any]:
        raise ValueError("no interactions to train on")

    running = jobs.submit("acme", "train:slow", "alice", slow)
    queued = jobs.submit("acme", "train:queued", "alice", slow)
    failing = jobs.submit("acme", "train:broken", None, broken)
    wait_for(jobs, "acme", running.job_id, "running")
    assert jobs.get("acme", running.job_id).progress == "halfway there"  # one line
    with pytest.raises(ApiError) as refused:
        jobs.cancel("acme", running.job_id)
    assert refused.value.status == 409
    assert jobs.cancel("acme", queued.job_id).status == "cancelled"
    with pytest.raises(NotFound):  # another tenant's job is not there for it
        jobs.get("globex", running.job_id)
    with pytest.raises(NotFound):
        jobs.cancel("globex", failing.job_id)
    release.set()
    assert wait_for(jobs, "acme", running.job_id, "succeeded")["result"] == {"done": True}
    failed = wait_for(jobs, "acme", failing.job_id, "failed")
    assert failed["error"] == "no interactions to train on"
    assert jobs.get("acme", queued.job_id).status == "cancelled"  # it never ran
    assert [j.job_id for j in jobs.of_tenant("acme")] == [
        running.job_id,
        queued.job_id,
        failing.job_id,
    ]
    assert jobs.of_tenant("globex") == []
    jobs.shutdown()


def test_delete_user_forgets_their_jobs() -> None:
    jobs = Jobs()
    release = threading.Event()
    ran: list[str] = []

    def slow(progress: Any) -> dict[str, Any]:
        release.wait(10)
        ran.append("slow")
        return {"artifact": "alice's adapter"}

    def later(progress: Any) -> dict[str, Any]:
        ran.append("later")
        return {}

    done = jobs.submit("acme", "train:done", "alice", lambda progress: {"x": 1})
    wait_for(jobs, "acme", done.job_id, "succeeded")
    running = jobs.submit("acme", "train:slow", "alice", slow)
    jobs.submit("acme", "train:later", "alice", later)
    bobs = jobs.submit("acme", "train:bob", "bob", lambda progress: {})
    wait_for(jobs, "acme", running.job_id, "running")
    assert jobs.forget_user("acme", "alice") == 2  # the finished and the queued one
    assert [j.job_id for j in jobs.of_tenant("acme")] == [running.job_id, bobs.job_id]
    release.set()
    wait_for(jobs, "acme", bobs.job_id, "succeeded")
    # The running job went when it ended; the queued one never ran.
    assert [j.job_id for j in jobs.of_tenant("acme")] == [bobs.job_id]
    assert ran == ["slow"]
    jobs.shutdown()
