"""The rows under the jobs, on both backends: racing claimers never share a job (Postgres:
``FOR UPDATE SKIP LOCKED``; SQLite: one writer), ``once`` submissions racing find one job,
and the Postgres schema is versioned (a newer one is refused) and keeps no statistics."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from pgen.context.base import StoreError
from pgen.run.jobs import Jobs
from pgen.run.jobs.backends import open_job_rows
from pgen.run.jobs.pg_rows import SCHEMA_VERSION, PgJobRows
from tests.postgres_server import PostgresServer
from tests.serve import job_works
from tests.serve.conftest import JobRowsAt

assert job_works.WORKS  # registers the test works


def test_racing_claimers_never_share_a_job(job_rows_at: JobRowsAt) -> None:
    jobs = Jobs(job_rows_at.where)  # submits only
    ids = {jobs.submit("acme", "m", "u", "test:marker", {}).job_id for _ in range(40)}
    rows = [open_job_rows(job_rows_at.where) for _ in range(4)]  # four claimers, own pools
    got: list[list[str]] = [[] for _ in rows]
    start = threading.Barrier(len(rows))

    def claimer(n: int) -> None:
        start.wait(60)
        while (row := rows[n].claim(["test:marker"], f"w{n}", uuid.uuid4().hex, 1e12)) is not None:
            got[n].append(row["job_id"])

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(len(rows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    claimed = [job_id for each in got for job_id in each]
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert all(job.status == "running" and job.attempts == 1 for job in jobs.of_tenant("acme"))
    for each in rows:
        each.close()


def test_racing_once_submissions_find_one_job(job_rows_at: JobRowsAt) -> None:
    submitters = [Jobs(job_rows_at.where) for _ in range(4)]
    found: list[str] = []
    start = threading.Barrier(len(submitters))

    def submit(jobs: Jobs) -> None:
        start.wait(60)
        found.append(jobs.submit("acme", "train:lora", "ann", "test:marker", once=True).job_id)

    threads = [threading.Thread(target=submit, args=(jobs,)) for jobs in submitters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(found) == 4 and len(set(found)) == 1
    assert len(submitters[0].of_tenant("acme")) == 1


def test_the_postgres_jobs_schema_is_versioned_and_keeps_no_statistics(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.url(postgres_server.create_database("jobs"))
    PgJobRows(url).close()
    PgJobRows(url).close()  # a second open finds the work done
    with psycopg.connect(url, autocommit=True) as db:
        assert db.execute("SELECT version FROM pgen_jobs.schema_version").fetchall() == [
            (SCHEMA_VERSION,)
        ]
        stats = db.execute(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid=a.attrelid "
            "JOIN pg_namespace n ON n.oid=c.relnamespace WHERE n.nspname='pgen_jobs' "
            "AND c.relname='jobs' AND a.attstattarget <> 0 AND a.attnum > 0 "
            "AND NOT a.attisdropped AND a.atttypid = 'text'::regtype"
        ).fetchall()
        assert stats == []  # user ids, args, results: never copied into pg_statistic
        db.execute("UPDATE pgen_jobs.schema_version SET version = version + 1")
    with pytest.raises(StoreError, match="newer than this pgen"):
        PgJobRows(url)


def test_an_unknown_url_scheme_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="jobs: 'mysql' URLs are not supported"):
        open_job_rows("mysql://x/y")
