"""The user's stated preferences in the Postgres store: the same rules as
``pgen.context.sqlite.preference_rows`` (written by ``add`` in the batch's transaction, read
and removed by user, every query naming the user in its ``WHERE`` clause)."""

from __future__ import annotations

from collections.abc import Sequence

from pgen.context.postgres.connection import Connection, PgDatabase
from pgen.context.records import Preference
from pgen.context.rows import preference_of, preference_params

UPSERT = (
    b"INSERT INTO preferences(user_id, preference_id, text, origin, source, span_start, "
    b"span_end, time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    b"ON CONFLICT (user_id, preference_id) DO UPDATE SET text=excluded.text, "
    b"origin=excluded.origin, source=excluded.source, span_start=excluded.span_start, "
    b"span_end=excluded.span_end, time=excluded.time "
    b"WHERE (preferences.text, preferences.origin, preferences.source, preferences.span_start, "
    b"preferences.span_end, preferences.time) IS DISTINCT FROM (excluded.text, "
    b"excluded.origin, excluded.source, excluded.span_start, excluded.span_end, excluded.time)"
)


def write_preference(db: Connection, record: Preference) -> int:
    """Insert, or replace the one of the same id (an edit); the same record twice writes
    nothing."""
    return db.execute(UPSERT, preference_params(record)).rowcount


def read_preferences(
    database: PgDatabase, user_id: str, preference_ids: Sequence[str] | None
) -> list[Preference]:
    """Oldest first (undated ones first), then by id: the SQLite store's order."""
    if preference_ids is None:
        rows = database.rows(
            "SELECT * FROM preferences WHERE user_id=%s ORDER BY time NULLS FIRST, preference_id",
            user_id,
        )
        return [preference_of(row) for row in rows]
    rows = database.rows_any(
        "SELECT * FROM preferences WHERE user_id=%s AND preference_id = ANY(%s)",
        preference_ids,
        user_id,
    )
    found = {row["preference_id"]: preference_of(row) for row in rows}
    return [found[key] for key in preference_ids if key in found]


def delete_preferences(database: PgDatabase, user_id: str, preference_ids: Sequence[str]) -> int:
    with database.transaction() as db:
        return db.execute(
            b"DELETE FROM preferences WHERE user_id=%s AND preference_id = ANY(%s)",
            (user_id, list(dict.fromkeys(preference_ids))),
        ).rowcount
