"""Jobs: queued ones cancel, running ones stop when asked (or refuse, when their work
cannot stop midway), failures are reported, records outlive the process, and a job is
only ever its own tenant's. Durable: two worker processes on one file claim disjoint
jobs; a worker killed mid-job leaves its job to another, up to a bounded number of
attempts (tests/serve/test_job_workers.py). Each runs on both backends: a SQLite file and
the real Postgres server (``job_rows_at``)."""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgen.cli.main import main
from pgen.config import Config
from pgen.errors import Conflict
from pgen.run.jobs import Jobs
from pgen.serve.errors import NOT_FOUND_BODY, NotFound
from tests.serve import job_works
from tests.serve.conftest import JobRowsAt
from tests.serve.job_works import gate, signal_of
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


def test_queued_cancel_running_refuse_failures_reported(job_rows_at: JobRowsAt) -> None:
    at = job_rows_at
    jobs = Jobs(at.where).start()
    slow = {"name": "q-slow", "result": {"done": True}}
    running = jobs.submit("acme", "train:slow", "alice", "test:slow", slow, cancellable=False)
    queued = jobs.submit("acme", "train:queued", "alice", "test:slow", {"name": "q-queued"})
    failing = jobs.submit("acme", "train:broken", None, "test:fail")
    wait_for(jobs, "acme", running.job_id, "running")
    assert signal_of("q-slow").wait(120)  # not a race with the job's first progress report
    assert jobs.get("acme", running.job_id).progress == "halfway there"  # one line
    with pytest.raises(Conflict):
        jobs.cancel("acme", running.job_id)
    assert jobs.cancel("acme", queued.job_id).status == "cancelled"
    with pytest.raises(NotFound):  # another tenant's job is not there for it
        jobs.get("globex", running.job_id)
    with pytest.raises(NotFound):
        jobs.cancel("globex", failing.job_id)
    gate("q-slow").set()
    assert wait_for(jobs, "acme", running.job_id, "succeeded")["result"] == {"done": True}
    failed = wait_for(jobs, "acme", failing.job_id, "failed")
    assert failed["error"] == "no interactions to train on"
    assert jobs.get("acme", queued.job_id).status == "cancelled"  # it never ran
    assert "q-queued" not in job_works.RAN
    assert [j.job_id for j in jobs.of_tenant("acme")] == [
        running.job_id,
        queued.job_id,
        failing.job_id,
    ]
    assert jobs.of_tenant("globex") == []
    with pytest.raises(ValueError, match="no job work named 'nope'"):  # named works only
        jobs.submit("acme", "x", None, "nope")
    jobs.shutdown()


def test_delete_user_forgets_their_jobs(job_rows_at: JobRowsAt) -> None:
    at = job_rows_at
    jobs = Jobs(at.where).start()
    done = jobs.submit("acme", "train:done", "alice", "test:slow", {"name": "f-done"})
    gate("f-done").set()
    wait_for(jobs, "acme", done.job_id, "succeeded")
    running = jobs.submit("acme", "train:slow", "alice", "test:slow", {"name": "f-slow"})
    jobs.submit("acme", "train:later", "alice", "test:slow", {"name": "f-later"})
    bobs = jobs.submit("acme", "train:bob", "bob", "test:slow", {"name": "f-bob"})
    gate("f-bob").set()
    wait_for(jobs, "acme", running.job_id, "running")
    assert jobs.forget_user("acme", "alice") == 2  # the finished and the queued one
    assert [j.job_id for j in jobs.of_tenant("acme")] == [running.job_id, bobs.job_id]
    gate("f-slow").set()
    wait_for(jobs, "acme", bobs.job_id, "succeeded")
    # The running job went when it ended; the queued one never ran.
    assert [j.job_id for j in jobs.of_tenant("acme")] == [bobs.job_id]
    assert "f-later" not in job_works.RAN and "f-slow" in job_works.RAN
    # No byte of alice's jobs in the files (SQLite: secure_delete zeroes freed pages;
    # Postgres: the jobs table is rewritten, VACUUM FULL, after her rows went).
    jobs.shutdown()
    jobs.rows.close()
    raw = at.raw()
    assert b"f-bob" in raw  # the bytes are readable: what is missing is gone
    assert b"alice" not in raw and b"f-slow" not in raw and b"f-later" not in raw


def test_a_running_job_stops_when_cancelled_and_shows_its_progress(job_rows_at: JobRowsAt) -> None:
    at = job_rows_at
    jobs = Jobs(at.where).start()
    job = jobs.submit("acme", "train:loop", "alice", "test:loop", {"name": "c-loop"})
    assert signal_of("c-loop").wait(120)
    seen = jobs.get("acme", job.job_id)
    assert seen.status == "running" and seen.total == 10_000 and 1 <= (seen.step or 0) < 10_000
    assert seen.loss == pytest.approx(1.0 / (seen.step or 1))
    asked = jobs.cancel("acme", job.job_id)
    # The loop may already have seen the request and ended by the time cancel reads back.
    assert asked.status in ("running", "cancelled") and asked.cancel_requested
    stopped = wait_for(jobs, "acme", job.job_id, "cancelled")
    assert stopped["result"] is None and stopped["finished"] and stopped["step"] < 10_000
    jobs.shutdown()


def test_records_outlive_the_process_and_a_stopped_workers_jobs_wait_for_another(
    job_rows_at: JobRowsAt,
) -> None:
    """A second ``Jobs`` on the same file answers the first's finished job; the first's
    workers stopping put its running job back in the queue, for the second to run."""
    at = job_rows_at
    first = Jobs(at.where).start()
    done = first.submit(
        "acme", "train:done", "alice", "test:slow", {"name": "r-done", "result": {"x": 1}}
    )
    gate("r-done").set()
    wait_for(first, "acme", done.job_id, "succeeded")
    running = first.submit("acme", "train:slow", "alice", "test:slow", {"name": "r-slow"})
    wait_for(first, "acme", running.job_id, "running")
    first.shutdown()  # a replica going away: its job is queued again, attempt not counted
    second = Jobs(at.where)
    assert second.get("acme", done.job_id).result == {"x": 1}
    with pytest.raises(NotFound):
        second.get("globex", done.job_id)
    requeued = second.get("acme", running.job_id)
    assert (requeued.status, requeued.attempts) == ("queued", 0)
    gate("r-slow").set()  # the first run's work ends: its end is not recorded
    second.start()
    assert wait_for(second, "acme", running.job_id, "succeeded")["attempts"] == 1
    second.shutdown()


def poll_progress(
    client: httpx.Client, job_id: str, reached: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The job's record once ``reached`` holds (the record changes as the job runs)."""
    deadline = time.monotonic() + 120  # against a hang only
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["status"] == "running" and reached(job):
            return job
        assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
        time.sleep(0.05)


def test_cancelling_a_lora_training_job_stops_it_and_saves_nothing(
    server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
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
        # Well into its optimizer steps: the record tells each step's count and loss.
        seen = [poll_progress(client, job_id, lambda job: (job["step"] or 0) >= 1)]
        seen.append(poll_progress(client, job_id, lambda job: job["step"] > seen[0]["step"]))
        for job in seen:
            assert job["status"] == "running" and job["total"] == 50_000, job
            assert math.isfinite(job["loss"]) and job["loss"] > 0, job
            assert job["progress"].startswith(f"step {job['step']}/50000, loss "), job
        with server.client("globex") as other:  # another tenant cannot stop it
            assert other.delete(f"/jobs/{job_id}").json() == NOT_FOUND_BODY
        asked = client.delete(f"/jobs/{job_id}").json()
        assert asked["cancel_requested"] is True
        job = poll(client, job_id)
        assert job["status"] == "cancelled" and job["result"] is None, job
        assert client.get("/users/lora-cancel/export").json()["artifacts"] == []
        # The same training, a few steps, runs to the end and saves the adapter.
        done = client.post("/users/lora-cancel/train", json={"method": "lora", "steps": 2})
        finished = poll(client, done.json()["job_id"])
        assert finished["status"] == "succeeded"
        # Its record ends at its total, with the last step's loss.
        assert (finished["step"], finished["total"]) == (2, 2), finished
        assert finished["loss"] > 0 and math.isfinite(finished["loss"])
        home = str(server.config.home)
        assert main(["--home", home, "jobs", "show", finished["job_id"]]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert (shown["step"], shown["total"], shown["loss"]) == (2, 2, finished["loss"])
        artifacts = client.get("/users/lora-cancel/export").json()["artifacts"]
        assert [(a["kind"], a["complete"]) for a in artifacts] == [("lora", True)]
        # Steps are counted optimizer steps: none is refused before any job starts.
        refused = client.post("/users/lora-cancel/train", json={"method": "lora", "steps": 0})
        assert refused.status_code == 422 and "steps" in refused.text


def test_a_restart_answers_finished_jobs_and_runs_the_killed_ones_again(
    tmp_path: Path, tiny_llama: Path
) -> None:
    """``pgen serve`` killed (-9) while a training job runs: the next process answers
    the finished job as it was, and claims the killed one again (its second attempt),
    which a cancel then stops with nothing saved."""
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
            deadline = time.monotonic() + 120  # against a hang only
            job = client.get(f"/jobs/{running}").json()
            while (job["status"], job["attempts"]) != ("running", 2):
                assert time.monotonic() < deadline, job
                time.sleep(0.05)
                job = client.get(f"/jobs/{running}").json()
            assert [j["job_id"] for j in client.get("/jobs").json()] == [finished, running]
            other = {"Authorization": f"Bearer {keys['globex']}"}
            assert client.get(f"/jobs/{running}", headers=other).json() == NOT_FOUND_BODY
            assert client.delete(f"/jobs/{running}").json()["cancel_requested"] is True
            job = poll(client, running)
            assert job["status"] == "cancelled" and job["result"] is None, job
            assert client.get("/users/ana/export").json()["artifacts"] == []
    finally:
        process.terminate()
        process.wait(60)
