"""Which rows class holds the jobs: a path is a SQLite file (``SqliteJobRows``), a
``postgresql://`` URL is the store's database (``PgJobRows``, schema ``pgen_jobs``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pgen.run.jobs.rows import SqliteJobRows

if TYPE_CHECKING:
    from pgen.run.jobs.pg_rows import PgJobRows

    JobRows = SqliteJobRows | PgJobRows

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(where: Path | str) -> bool:
    return isinstance(where, str) and where.startswith(POSTGRES_SCHEMES)


def open_job_rows(where: Path | str) -> JobRows:
    """The rows at ``where``: a SQLite file's path, or a Postgres URL."""
    if is_postgres(where):
        from pgen.run.jobs.pg_rows import PgJobRows  # psycopg: the postgres extra

        return PgJobRows(str(where))
    if isinstance(where, str) and "://" in where:
        raise ValueError(f"jobs: {where.partition('://')[0]!r} URLs are not supported")
    return SqliteJobRows(Path(where))
