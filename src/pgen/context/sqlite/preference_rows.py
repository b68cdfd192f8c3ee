"""The user's stated preferences in the SQLite store: written by ``add`` (in the batch's
transaction, like every record), read and removed by user. Every query names the user in
its ``WHERE`` clause: another user's preference id reads and removes nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from pgen.context.records import Preference
from pgen.context.rows import preference_of, preference_params
from pgen.context.sqlite.connection import Database


def write_preference(db: sqlite3.Connection, record: Preference) -> None:
    """Insert, or replace the text, origin and source of the one of the same id (an edit);
    the same record twice writes nothing."""
    db.execute(
        "INSERT INTO preferences(user_id, preference_id, text, origin, source, span_start, "
        "span_end, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(user_id, preference_id) DO UPDATE SET text=excluded.text, "
        "origin=excluded.origin, source=excluded.source, span_start=excluded.span_start, "
        "span_end=excluded.span_end, time=excluded.time "
        "WHERE (text, origin, source, span_start, span_end, time) IS NOT "
        "(excluded.text, excluded.origin, excluded.source, excluded.span_start, "
        "excluded.span_end, excluded.time)",
        preference_params(record),
    )


def read_preferences(
    database: Database, user_id: str, preference_ids: Sequence[str] | None
) -> list[Preference]:
    """Oldest first (undated ones, given by the user without a time, first), then by id."""
    if preference_ids is None:
        rows = database.rows(
            "SELECT * FROM preferences WHERE user_id=? ORDER BY time, preference_id", user_id
        )
        return [preference_of(row) for row in rows]
    rows = database.rows_in(
        "SELECT * FROM preferences WHERE user_id=? AND preference_id", preference_ids, user_id
    )
    found = {row["preference_id"]: preference_of(row) for row in rows}
    return [found[key] for key in preference_ids if key in found]


def delete_preferences(database: Database, user_id: str, preference_ids: Sequence[str]) -> int:
    with database.transaction() as db:
        return sum(
            db.execute(
                "DELETE FROM preferences WHERE user_id=? AND preference_id=?", (user_id, key)
            ).rowcount
            for key in dict.fromkeys(preference_ids)
        )
