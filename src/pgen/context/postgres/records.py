"""The records part of the Postgres store: users, their context, the catalog, the change feed.

The same rules as ``pgen.context.sqlite.record_tables``: every read of a user's data has the
``user_id`` in its ``WHERE`` clause; one ingest batch is one transaction; writing a record
identical to the stored one writes nothing (``IS DISTINCT FROM`` in the upsert).
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import errors

from pgen.context.base import IngestStats, Revision, UserNotFoundError, UserSummary
from pgen.context.postgres import preferences as preference_rows
from pgen.context.postgres.connection import Connection, PgDatabase
from pgen.context.records import (
    Document,
    Feedback,
    Interaction,
    Item,
    Preference,
    Record,
    Subject,
    User,
    to_json,
)
from pgen.context.rows import (
    document_of,
    feedback_of,
    interaction_of,
    item_of,
    subject_of,
    time_text,
)

DEADLOCK_ATTEMPTS = 5


def incarnation() -> int:
    return secrets.randbits(63)


_UPSERT = {
    # One statement per document: the upsert stamps the document with the user's next
    # revision and, only when it wrote (new or changed), advances the user's revision. The
    # batch holds the user's row lock (``_ensure_user``), so the revision read here is the
    # latest and no other writer of this user can interleave.
    "document": (
        "WITH written AS (INSERT INTO documents(user_id, doc_id, kind, title, text, time, "
        "fields, content_hash, revision) VALUES (%(user)s, %(doc)s, %(kind)s, %(title)s, "
        "%(text)s, %(time)s, %(fields)s, %(hash)s, "
        "(SELECT revision + 1 FROM users WHERE user_id=%(user)s)) "
        "ON CONFLICT (user_id, doc_id) DO UPDATE SET kind=excluded.kind, title=excluded.title, "
        "text=excluded.text, time=excluded.time, fields=excluded.fields, "
        "content_hash=excluded.content_hash, revision=excluded.revision WHERE "
        "(documents.kind, documents.title, documents.text, documents.time, documents.fields) "
        "IS DISTINCT FROM "
        "(excluded.kind, excluded.title, excluded.text, excluded.time, excluded.fields) "
        "RETURNING 1) "
        "UPDATE users SET revision = revision + 1 "
        "WHERE user_id=%(user)s AND EXISTS (SELECT 1 FROM written)"
    ),
    "item": (
        "INSERT INTO items(item_id, title, text, attributes, image_path) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (item_id) DO UPDATE SET title=excluded.title, "
        "text=excluded.text, attributes=excluded.attributes, image_path=excluded.image_path "
        "WHERE (items.title, items.text, items.attributes, items.image_path) IS DISTINCT FROM "
        "(excluded.title, excluded.text, excluded.attributes, excluded.image_path)"
    ),
    "subject": (
        "INSERT INTO subjects(user_id, name, class_word, image_paths) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (user_id, name) DO UPDATE SET class_word=excluded.class_word, "
        "image_paths=excluded.image_paths WHERE (subjects.class_word, subjects.image_paths) "
        "IS DISTINCT FROM (excluded.class_word, excluded.image_paths)"
    ),
    "feedback": (
        "INSERT INTO feedback(user_id, feedback_id, output_id, thumbs, prompt, chosen, "
        "rejected, time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (user_id, feedback_id) DO UPDATE SET output_id=excluded.output_id, "
        "thumbs=excluded.thumbs, prompt=excluded.prompt, chosen=excluded.chosen, "
        "rejected=excluded.rejected, time=excluded.time WHERE (feedback.output_id, "
        "feedback.thumbs, feedback.prompt, feedback.chosen, feedback.rejected, feedback.time) "
        "IS DISTINCT FROM (excluded.output_id, excluded.thumbs, excluded.prompt, "
        "excluded.chosen, excluded.rejected, excluded.time)"
    ),
    "interaction": (
        "INSERT INTO interactions(user_id, item_id, action, rating, time, seq) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (user_id, item_id, action, time, seq) "
        "DO UPDATE SET rating=excluded.rating "
        "WHERE interactions.rating IS DISTINCT FROM excluded.rating"
    ),
}


class PgRecords:
    """``RecordStore`` over one ``PgDatabase``."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    @property
    def location(self) -> str:
        return self.db.location

    def has_user(self, user_id: str) -> bool:
        return bool(self.db.rows("SELECT 1 FROM users WHERE user_id=%s", user_id))

    # -- writing context --------------------------------------------------------------
    def add(self, records: Iterable[Record]) -> IngestStats:
        """Write records in one transaction. Same records twice: the second writes nothing.

        Two batches writing the same catalog items in different orders can deadlock (row
        locks, which SQLite's single writer never meets): Postgres aborts one, which is then
        run again from the start, a few times, unless it is part of a caller's larger
        transaction (that caller sees the error)."""
        batch = list(records)  # read once: a retry writes the same records
        # Locks taken in one order by every batch cannot deadlock: catalog items first, by
        # id (stable: a repeated item's last version still wins), then the rest in order.
        items = sorted((r for r in batch if isinstance(r, Item)), key=lambda r: r.item_id)
        batch = [*items, *(r for r in batch if not isinstance(r, Item))]
        for attempt in range(DEADLOCK_ATTEMPTS):
            try:
                return self._add(batch)
            except (errors.DeadlockDetected, errors.SerializationFailure):
                if self.db.in_transaction or attempt == DEADLOCK_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0.01, 0.1) * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _add(self, records: list[Record]) -> IngestStats:
        stats = IngestStats()
        repeats: Counter[tuple[str, str, str, str]] = Counter()
        known: set[str] = set()  # users made sure of in this batch
        with self.db.transaction() as db:
            # The batch's existing users, locked in id order (the same order in every batch).
            ids = sorted({r.user_id for r in records if not isinstance(r, Item)})
            db.execute(
                b"SELECT 1 FROM users WHERE user_id = ANY(%s) ORDER BY user_id FOR UPDATE", (ids,)
            )
            for record in records:
                stats.count(type(record).__name__.lower())
                user_id = getattr(record, "user_id", None)
                wrote = 0
                if user_id is not None and not isinstance(record, User) and user_id not in known:
                    wrote += self._ensure_user(db, user_id)
                    known.add(user_id)
                if isinstance(record, Interaction):
                    key = (
                        record.user_id,
                        record.item_id,
                        record.action,
                        time_text(record.time) or "",
                    )
                    wrote += self._execute(db, "interaction", self._row(record, repeats[key]))
                    repeats[key] += 1
                else:
                    wrote += self._write(db, record)
                stats.written += int(wrote > 0)
        return stats

    @staticmethod
    def _execute(db: Connection, kind: str, params: Sequence[Any]) -> int:
        return db.execute(_UPSERT[kind].encode(), params).rowcount

    @staticmethod
    def _ensure_user(db: Connection, user_id: str) -> int:
        """Create the user if new, and hold their row's lock until the batch commits:
        writers of one user take turns (as SQLite's one writer does), writers of different
        users never wait for each other."""
        created = db.execute(
            b"INSERT INTO users(user_id, incarnation) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (user_id, incarnation()),
        ).rowcount
        db.execute(b"SELECT 1 FROM users WHERE user_id=%s FOR UPDATE", (user_id,))
        return created

    @staticmethod
    def _row(record: Interaction, seq: int) -> tuple[Any, ...]:
        return (
            record.user_id,
            record.item_id,
            record.action,
            record.rating,
            time_text(record.time) or "",
            seq,
        )

    def _write(self, db: Connection, record: Record) -> int:
        if isinstance(record, User):
            return db.execute(
                b"INSERT INTO users(user_id, profile, incarnation) VALUES (%s, %s, %s) "
                b"ON CONFLICT (user_id) DO UPDATE SET profile=excluded.profile "
                b"WHERE users.profile IS DISTINCT FROM excluded.profile",
                (record.user_id, to_json(record.profile), incarnation()),
            ).rowcount
        if isinstance(record, Document):
            return db.execute(
                _UPSERT["document"].encode(),
                {
                    "user": record.user_id,
                    "doc": record.doc_id,
                    "kind": record.kind,
                    "title": record.title,
                    "text": record.text,
                    "time": time_text(record.time),
                    "fields": to_json(record.fields),
                    "hash": record.content_hash,
                },
            ).rowcount
        if isinstance(record, Item):
            return self._execute(
                db,
                "item",
                (
                    record.item_id,
                    record.title,
                    record.text,
                    to_json(record.attributes),
                    record.image_path,
                ),
            )
        if isinstance(record, Subject):
            return self._execute(
                db,
                "subject",
                (record.user_id, record.name, record.class_word, to_json(record.image_paths)),
            )
        if isinstance(record, Feedback):
            return self._execute(
                db,
                "feedback",
                (
                    record.user_id,
                    record.feedback_id,
                    record.output_id,
                    record.thumbs,
                    record.prompt,
                    record.chosen,
                    record.rejected,
                    time_text(record.time),
                ),
            )
        if isinstance(record, Preference):
            return preference_rows.write_preference(db, record)
        raise TypeError(f"not a context record: {type(record).__name__}")  # pragma: no cover

    def delete_documents(self, user_id: str, doc_ids: Sequence[str]) -> int:
        removed = 0
        with self.db.transaction() as db:
            for doc_id in doc_ids:
                if db.execute(
                    b"DELETE FROM documents WHERE user_id=%s AND doc_id=%s", (user_id, doc_id)
                ).rowcount:
                    removed += 1
                    db.execute(
                        b"WITH bumped AS (UPDATE users SET revision = revision + 1 "
                        b"WHERE user_id=%s RETURNING revision) "
                        b"INSERT INTO document_deletions(user_id, doc_id, revision) "
                        b"SELECT %s, %s, revision FROM bumped",
                        (user_id, user_id, doc_id),
                    )
        return removed

    # -- reading one user's context ---------------------------------------------------
    def user(self, user_id: str) -> User:
        rows = self.db.rows("SELECT profile FROM users WHERE user_id=%s", user_id)
        if not rows:
            raise UserNotFoundError(user_id)
        return User(user_id=user_id, profile=json.loads(rows[0]["profile"]))

    def users(self, offset: int = 0, limit: int | None = None) -> list[UserSummary]:
        rows = self.db.rows(
            "SELECT u.user_id, "
            "(SELECT COUNT(*) FROM documents d WHERE d.user_id=u.user_id) AS documents, "
            "(SELECT COUNT(*) FROM interactions i WHERE i.user_id=u.user_id) AS interactions, "
            "(SELECT COUNT(*) FROM subjects s WHERE s.user_id=u.user_id) AS subjects, "
            "(SELECT COUNT(*) FROM feedback f WHERE f.user_id=u.user_id) AS feedback "
            "FROM users u ORDER BY u.user_id LIMIT %s OFFSET %s",
            limit,
            offset,
        )
        return [UserSummary(**row) for row in rows]

    def revision(self, user_id: str) -> Revision:
        rows = self.db.rows("SELECT incarnation, revision FROM users WHERE user_id=%s", user_id)
        if not rows:
            raise UserNotFoundError(user_id)
        return Revision(int(rows[0]["incarnation"]), int(rows[0]["revision"]))

    def documents(
        self, user_id: str, doc_ids: Sequence[str] | None = None, *, kind: str | None = None
    ) -> list[Document]:
        order = "ORDER BY time NULLS FIRST, doc_id"
        if doc_ids is None:
            if kind is None:
                rows = self.db.rows(f"SELECT * FROM documents WHERE user_id=%s {order}", user_id)
            else:
                rows = self.db.rows(
                    f"SELECT * FROM documents WHERE user_id=%s AND kind=%s {order}", user_id, kind
                )
            return [document_of(row) for row in rows]
        if kind is not None:
            raise ValueError("documents: give doc_ids or a kind, not both")
        rows = self.db.rows_any(
            "SELECT * FROM documents WHERE user_id=%s AND doc_id = ANY(%s)", doc_ids, user_id
        )
        found = {row["doc_id"]: document_of(row) for row in rows}
        return [found[doc_id] for doc_id in doc_ids if doc_id in found]

    def document_hashes(self, user_id: str) -> dict[str, str]:
        rows = self.db.rows("SELECT doc_id, content_hash FROM documents WHERE user_id=%s", user_id)
        return {row["doc_id"]: row["content_hash"] for row in rows}

    def document_changes(self, user_id: str, since: int) -> tuple[dict[str, str], list[str]]:
        changed = self.db.rows(
            "SELECT doc_id, content_hash FROM documents WHERE user_id=%s AND revision>%s",
            user_id,
            since,
        )
        deleted = self.db.rows(
            "SELECT doc_id FROM document_deletions WHERE user_id=%s AND revision>%s "
            "ORDER BY revision",
            user_id,
            since,
        )
        return {r["doc_id"]: r["content_hash"] for r in changed}, [r["doc_id"] for r in deleted]

    def recent_doc_ids(self, user_id: str, k: int) -> list[str]:
        """The user's ``k`` most recent documents (undated ones last), newest first."""
        dated = self.db.rows(
            "SELECT doc_id FROM documents WHERE user_id=%s AND time IS NOT NULL "
            "ORDER BY time DESC, doc_id DESC LIMIT %s",
            user_id,
            k,
        )
        undated = self.db.rows(
            "SELECT doc_id FROM documents WHERE user_id=%s AND time IS NULL "
            "ORDER BY doc_id DESC LIMIT %s",
            user_id,
            max(0, k - len(dated)),
        )
        return [row["doc_id"] for row in [*dated, *undated]]

    def interactions(self, user_id: str) -> list[Interaction]:
        rows = self.db.rows(
            "SELECT * FROM interactions WHERE user_id=%s ORDER BY time, item_id, seq",
            user_id,
        )
        return [interaction_of(row) for row in rows]

    def subjects(self, user_id: str) -> list[Subject]:
        rows = self.db.rows("SELECT * FROM subjects WHERE user_id=%s ORDER BY name", user_id)
        return [subject_of(row) for row in rows]

    def feedback(self, user_id: str) -> list[Feedback]:
        rows = self.db.rows(
            "SELECT * FROM feedback WHERE user_id=%s ORDER BY time NULLS FIRST",
            user_id,
        )
        return [feedback_of(row) for row in rows]

    def preferences(
        self, user_id: str, preference_ids: Sequence[str] | None = None
    ) -> list[Preference]:
        return preference_rows.read_preferences(self.db, user_id, preference_ids)

    def delete_preferences(self, user_id: str, preference_ids: Sequence[str]) -> int:
        return preference_rows.delete_preferences(self.db, user_id, preference_ids)

    # -- the catalog (shared by all users) --------------------------------------------
    def items(self, item_ids: Sequence[str] | None = None) -> list[Item]:
        if item_ids is None:
            rows = self.db.rows("SELECT * FROM items ORDER BY item_id")
        else:
            rows = self.db.rows_any("SELECT * FROM items WHERE item_id = ANY(%s)", item_ids)
        return [item_of(row) for row in rows]

    def known_items(self, item_ids: Iterable[str]) -> set[str]:
        rows = self.db.rows_any(
            "SELECT item_id FROM items WHERE item_id = ANY(%s)", list(set(item_ids))
        )
        return {row["item_id"] for row in rows}

    def all_interactions(self) -> list[Interaction]:
        rows = self.db.rows("SELECT * FROM interactions ORDER BY user_id, time, item_id, seq")
        return [interaction_of(row) for row in rows]
