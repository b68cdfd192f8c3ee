"""Jobs: queued ones cancel, running ones stop when asked (or refuse, when their work
cannot stop midway), failures are reported, records outlive the process (a job it was
running is reported interrupted), and a job is only ever its own tenant's."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgen.config import Config
from pgen.serve.errors import NOT_FOUND_BODY, ApiError, NotFound
from pgen.serve.jobs import INTERRUPTED, JobControl, Jobs
from tests.serve.server import Running, free_port, make_keys, start_process, wait_ready
from tests.serve.test_api import poll


def wait_for(jobs: Jobs, tenant: str, job_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120  # against a hang only
    while time.monotonic() < deadline:
        job = jobs.get(tenant, job_id).as_dict()
        if job["status"] == status:
            return job
        time.sleep(0.01)
    raise AssertionError(f"{job_id} never {status}")


def test_queued_cancel_running_refuse_failures_reported(tmp_path: Path) -> None:
    jobs = Jobs(tmp_path / "jobs.sqlite")
    release, reported = threading.Event(), threading.Event()

    def slow(progress: Any) -> dict[str, Any]:
        progress("halfway\nthere")
        reported.set()  # the job's own signal: its progress is on record
        release.wait(120)
        return {"done": True}

    def broken(progress: Any) -> dict[str, Any]:
        raise ValueError("no interactions to train on")

    running = jobs.submit("acme", "train:slow", "alice", slow, cancellable=False)
    queued = jobs.submit("acme", "train:queued", "alice", slow)
    failing = jobs.submit("acme", "train:broken", None, broken)
    wait_for(jobs, "acme", running.job_id, "running")
    assert reported.wait(120)  # not a race with the job's first progress report
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


def test_delete_user_forgets_their_jobs(tmp_path: Path) -> None:
    jobs = Jobs(tmp_path / "jobs.sqlite")
    release = threading.Event()
    ran: list[str] = []

    def slow(progress: Any) -> dict[str, Any]:
        release.wait(120)
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


def test_a_running_job_stops_when_cancelled(tmp_path: Path) -> None:
    jobs = Jobs(tmp_path / "jobs.sqlite")
    steps: list[int] = []

    def loop(control: JobControl) -> dict[str, Any]:
        for step in range(10_000):  # a trainer: asks between steps
            control(f"step {step}")
            steps.append(step)
            time.sleep(0.005)
        return {"finished": True}

    job = jobs.submit("acme", "train:loop", "alice", loop)
    wait_for(jobs, "acme", job.job_id, "running")
    while len(steps) < 5:
        time.sleep(0.01)
    asked = jobs.cancel("acme", job.job_id)
    # The loop may already have seen the request and ended by the time cancel reads back.
    assert asked.status in ("running", "cancelled") and asked.cancel_requested
    stopped = wait_for(jobs, "acme", job.job_id, "cancelled")
    assert stopped["result"] is None and stopped["finished"] and len(steps) < 10_000
    jobs.shutdown()


def test_records_outlive_the_process_and_its_running_jobs_are_interrupted(
    tmp_path: Path,
) -> None:
    """A second run on the same file (a restart: another run of this pid) answers the
    first run's finished job, and reports its running and queued ones interrupted."""
    first = Jobs(tmp_path / "jobs.sqlite")
    release = threading.Event()
    done = first.submit("acme", "train:done", "alice", lambda control: {"x": 1})
    wait_for(first, "acme", done.job_id, "succeeded")
    running = first.submit("acme", "train:slow", "alice", lambda c: {"y": release.wait(120)})
    queued = first.submit("acme", "train:queued", "alice", lambda control: {})
    wait_for(first, "acme", running.job_id, "running")

    second = Jobs(tmp_path / "jobs.sqlite")  # the first is "gone": its pid is this one
    assert second.get("acme", done.job_id).result == {"x": 1}
    for job_id in (running.job_id, queued.job_id):
        job = second.get("acme", job_id)
        assert (job.status, job.error) == ("failed", INTERRUPTED)
    with pytest.raises(NotFound):
        second.get("globex", done.job_id)
    release.set()  # the first run's job ends: its end is not recorded over "failed"
    time.sleep(0.2)
    assert second.get("acme", running.job_id).status == "failed"
    second.shutdown()


def test_cancelling_a_lora_training_job_stops_it_and_saves_nothing(server: Running) -> None:
    with server.client("acme") as client:
        records = [
            {"type": "user", "user_id": "lora-cancel"},
            *(
                {"type": "document", "user_id": "lora-cancel", "doc_id": f"d{n}", "text": text}
                for n, text in enumerate(["I hike every weekend", "my dog Rex loves rain"])
            ),
        ]
        assert client.post("/records", json={"records": records}).status_code == 200
        started = client.post("/users/lora-cancel/train", json={"method": "lora", "steps": 50_000})
        assert started.status_code == 202 and started.json()["cancellable"] is True
        job_id = started.json()["job_id"]
        deadline = time.monotonic() + 120  # against a hang only
        while client.get(f"/jobs/{job_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # well into its optimizer steps (the base model has loaded)
        with server.client("globex") as other:  # another tenant cannot stop it
            assert other.delete(f"/jobs/{job_id}").json() == NOT_FOUND_BODY
        asked = client.delete(f"/jobs/{job_id}").json()
        assert asked["cancel_requested"] is True
        job = poll(client, job_id)
        assert job["status"] == "cancelled" and job["result"] is None, job
        assert client.get("/users/lora-cancel/export").json()["artifacts"] == []
        # The same training, a few steps, runs to the end and saves the adapter.
        done = client.post("/users/lora-cancel/train", json={"method": "lora", "steps": 2})
        assert poll(client, done.json()["job_id"])["status"] == "succeeded"
        artifacts = client.get("/users/lora-cancel/export").json()["artifacts"]
        assert [(a["kind"], a["complete"]) for a in artifacts] == [("lora", True)]
        # Steps are counted optimizer steps: none is refused before any job starts.
        refused = client.post("/users/lora-cancel/train", json={"method": "lora", "steps": 0})
        assert refused.status_code == 422 and "steps" in refused.text


def test_a_restart_answers_finished_jobs_and_reports_running_ones_interrupted(
    tmp_path: Path, tiny_llama: Path
) -> None:
    """``pgen serve`` killed (-9) while a training job runs: the next process answers
    the finished job as it was and the running one failed, interrupted by a restart."""
    home = tmp_path / "home"
    config = Config(home=home)
    keys = make_keys(config, ("acme", "globex"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {keys['acme']}"}
    process = start_process(home, tiny_llama, port)
    try:
        wait_ready(url, process)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            records = [
                {"type": "user", "user_id": "ana"},
                {"type": "document", "user_id": "ana", "doc_id": "d1", "text": "I hike a lot"},
                {"type": "item", "item_id": "i1", "title": "Boots"},
                {"type": "interaction", "user_id": "ana", "item_id": "i1", "action": "buy"},
            ]
            assert client.post("/records", json={"records": records}).status_code == 200
            finished = client.post("/recommenders/train", json={"model": "pop"}).json()["job_id"]
            assert poll(client, finished)["status"] == "succeeded"
            body = {"method": "lora", "steps": 50_000}
            running = client.post("/users/ana/train", json=body).json()["job_id"]
            deadline = time.monotonic() + 120  # against a hang only
            while client.get(f"/jobs/{running}").json()["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    process = start_process(home, tiny_llama, port)
    try:
        wait_ready(url, process)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            assert client.get(f"/jobs/{finished}").json()["status"] == "succeeded"
            job = client.get(f"/jobs/{running}").json()
            assert (job["status"], job["error"]) == ("failed", INTERRUPTED)
            assert [j["job_id"] for j in client.get("/jobs").json()] == [finished, running]
            other = {"Authorization": f"Bearer {keys['globex']}"}
            assert client.get(f"/jobs/{running}", headers=other).json() == NOT_FOUND_BODY
            assert client.get("/users/ana/export").json()["artifacts"] == []
    finally:
        process.terminate()
        process.wait(60)
