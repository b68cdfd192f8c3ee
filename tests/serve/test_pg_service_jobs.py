"""The service on a Postgres store keeps its jobs in that database (schema ``pgen_jobs``),
not in a file under its home: a job submitted through HTTP is a row there, read back
through ``/jobs``; delete-user forgets the user's job rows there too."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import psycopg
import pytest

from pgen.cli.main import main
from pgen.serve.app import jobs_path
from tests.serve.server import Running


def _done(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300  # against a hang only
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_a_postgres_service_keeps_its_jobs_in_the_database(
    postgres_tenants_server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    running = postgres_tenants_server
    url = jobs_path(running.config)
    assert url == running.config.store and isinstance(url, str)
    with running.client("acme") as client:
        trained = client.post("/users/alice/train", json={"method": "lora", "steps": 1})
        assert trained.status_code == 202, trained.text
        job_id = trained.json()["job_id"]
        done = _done(client, job_id)
        assert done["status"] == "succeeded", done
        assert (done["step"], done["total"]) == (1, 1) and math.isfinite(done["loss"]), done
        with running.client("globex") as other:  # another tenant's job is not there for it
            assert other.get(f"/jobs/{job_id}").status_code == 404
        with psycopg.connect(url) as db:
            rows = db.execute(
                "SELECT user_id, status FROM pgen_jobs.jobs WHERE job_id=%s", (job_id,)
            )
            assert rows.fetchall() == [("alice", "succeeded")]
        assert not list(running.config.home.rglob("jobs.sqlite*"))  # no file beside it
        # `pgen jobs` reads the same rows, from the store's database.
        capsys.readouterr()
        assert main(["--store", url, "jobs", "list", "--all"]) == 0
        assert job_id in capsys.readouterr().out
        deleted = client.delete("/users/alice")
        assert deleted.status_code == 200 and deleted.json()["counts"]["jobs"] == 1
    with psycopg.connect(url) as db:
        left = db.execute("SELECT count(*) FROM pgen_jobs.jobs WHERE user_id='alice'").fetchone()
        assert left == (0,)
