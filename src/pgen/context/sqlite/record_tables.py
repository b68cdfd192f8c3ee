"""The records part of the SQLite store: users, their context, the catalog, the change feed.

Every method that reads a user's data takes the ``user_id`` and puts it in the SQL
``WHERE`` clause: one user's rows never leave the store in another user's request.
Writes of one ingest batch share one transaction: a failed batch writes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence

from pgen.context.base import IngestStats, Revision, UserNotFoundError, UserSummary
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
from pgen.context.sqlite import preference_rows
from pgen.context.sqlite.connection import Database


class SQLiteRecords:
    """``RecordStore`` over one ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def location(self) -> str:
        return self.db.location

    def has_user(self, user_id: str) -> bool:
        return bool(self.db.rows("SELECT 1 FROM users WHERE user_id=?", user_id))

    # -- writing context --------------------------------------------------------------
    def add(self, records: Iterable[Record]) -> IngestStats:
        """Write records in one transaction. Same records twice: the second writes nothing."""
        stats = IngestStats()
        # Repeats of one interaction in a batch (same user, item, action and time, or
        # both undated) are separate events: numbered in batch order, so that writing the
        # same batch again writes nothing new.
        repeats: Counter[tuple[str, str, str, str]] = Counter()
        with self.db.transaction() as db:
            for record in records:
                stats.count(type(record).__name__.lower())
                before = db.total_changes
                if isinstance(record, Interaction):
                    key = (
                        record.user_id,
                        record.item_id,
                        record.action,
                        time_text(record.time) or "",
                    )
                    self._write_interaction(db, record, repeats[key])
                    repeats[key] += 1
                else:
                    self._write(db, record)
                # One per record, however many rows its write touched (revisions, users).
                stats.written += int(db.total_changes > before)
        return stats

    def _ensure_user(self, db: sqlite3.Connection, user_id: str) -> None:
        db.execute(
            "INSERT OR IGNORE INTO users(user_id, incarnation) VALUES (?, random())", (user_id,)
        )

    def _write(self, db: sqlite3.Connection, record: Record) -> None:
        if isinstance(record, User):
            db.execute(
                "INSERT INTO users(user_id, profile, incarnation) VALUES (?, ?, random()) "
                "ON CONFLICT(user_id) DO UPDATE SET profile=excluded.profile "
                "WHERE profile IS NOT excluded.profile",
                (record.user_id, to_json(record.profile)),
            )
        elif isinstance(record, Document):
            self._ensure_user(db, record.user_id)
            cursor = db.execute(
                "INSERT INTO documents(user_id, doc_id, kind, title, text, time, fields, "
                "content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(user_id, doc_id) DO UPDATE SET kind=excluded.kind, "
                "title=excluded.title, text=excluded.text, time=excluded.time, "
                "fields=excluded.fields, content_hash=excluded.content_hash "
                "WHERE (kind, title, text, time, fields) IS NOT "
                "(excluded.kind, excluded.title, excluded.text, excluded.time, excluded.fields)",
                (
                    record.user_id,
                    record.doc_id,
                    record.kind,
                    record.title,
                    record.text,
                    time_text(record.time),
                    to_json(record.fields),
                    record.content_hash,
                ),
            )
            if cursor.rowcount:
                revision = self._bump(db, record.user_id)
                db.execute(
                    "UPDATE documents SET revision=? WHERE user_id=? AND doc_id=?",
                    (revision, record.user_id, record.doc_id),
                )
        elif isinstance(record, Item):
            db.execute(
                "INSERT INTO items(item_id, title, text, attributes, image_path) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET "
                "title=excluded.title, text=excluded.text, attributes=excluded.attributes, "
                "image_path=excluded.image_path WHERE (title, text, attributes, image_path) "
                "IS NOT (excluded.title, excluded.text, excluded.attributes, excluded.image_path)",
                (
                    record.item_id,
                    record.title,
                    record.text,
                    to_json(record.attributes),
                    record.image_path,
                ),
            )
        elif isinstance(record, Subject):
            self._ensure_user(db, record.user_id)
            db.execute(
                "INSERT INTO subjects(user_id, name, class_word, image_paths) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET class_word=excluded.class_word, "
                "image_paths=excluded.image_paths WHERE (class_word, image_paths) IS NOT "
                "(excluded.class_word, excluded.image_paths)",
                (record.user_id, record.name, record.class_word, to_json(record.image_paths)),
            )
        elif isinstance(record, Feedback):
            self._ensure_user(db, record.user_id)
            db.execute(
                "INSERT INTO feedback(user_id, feedback_id, output_id, thumbs, prompt, "
                "chosen, rejected, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                # A changed verdict replaces the old one, as every other record type does.
                "ON CONFLICT DO UPDATE SET output_id=excluded.output_id, thumbs=excluded.thumbs, "
                "prompt=excluded.prompt, chosen=excluded.chosen, rejected=excluded.rejected, "
                "time=excluded.time WHERE (output_id, thumbs, prompt, chosen, rejected, time) "
                "IS NOT (excluded.output_id, excluded.thumbs, excluded.prompt, excluded.chosen, "
                "excluded.rejected, excluded.time)",
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
        elif isinstance(record, Preference):
            self._ensure_user(db, record.user_id)
            preference_rows.write_preference(db, record)
        elif isinstance(record, Interaction):
            self._write_interaction(db, record, 0)
        else:  # pragma: no cover - the Record union is closed
            raise TypeError(f"not a context record: {type(record).__name__}")

    def _write_interaction(self, db: sqlite3.Connection, record: Interaction, seq: int) -> None:
        self._ensure_user(db, record.user_id)
        db.execute(
            "INSERT INTO interactions(user_id, item_id, action, rating, time, seq) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET rating=excluded.rating "
            "WHERE rating IS NOT excluded.rating",
            (
                record.user_id,
                record.item_id,
                record.action,
                record.rating,
                time_text(record.time) or "",
                seq,
            ),
        )

    def _bump(self, db: sqlite3.Connection, user_id: str) -> int:
        """Advance the user's revision; returns the new one."""
        row = db.execute(
            "UPDATE users SET revision = revision + 1 WHERE user_id=? RETURNING revision",
            (user_id,),
        ).fetchone()
        return int(row[0])

    def delete_documents(self, user_id: str, doc_ids: Sequence[str]) -> int:
        with self.db.transaction() as db:
            removed = 0
            for doc_id in doc_ids:
                if db.execute(
                    "DELETE FROM documents WHERE user_id=? AND doc_id=?", (user_id, doc_id)
                ).rowcount:
                    removed += 1
                    db.execute(
                        "INSERT INTO document_deletions(user_id, doc_id, revision) "
                        "VALUES (?, ?, ?)",
                        (user_id, doc_id, self._bump(db, user_id)),
                    )
        return removed

    # -- reading one user's context ---------------------------------------------------
    def user(self, user_id: str) -> User:
        rows = self.db.rows("SELECT profile FROM users WHERE user_id=?", user_id)
        if not rows:
            raise UserNotFoundError(user_id)
        return User(user_id=user_id, profile=json.loads(rows[0]["profile"]))

    def users(self, offset: int = 0, limit: int | None = None) -> list[UserSummary]:
        """Users in id order with the size of their context (no content), a page at a time."""
        rows = self.db.rows(
            "SELECT u.user_id, "
            "(SELECT COUNT(*) FROM documents d WHERE d.user_id=u.user_id) AS documents, "
            "(SELECT COUNT(*) FROM interactions i WHERE i.user_id=u.user_id) AS interactions, "
            "(SELECT COUNT(*) FROM subjects s WHERE s.user_id=u.user_id) AS subjects, "
            "(SELECT COUNT(*) FROM feedback f WHERE f.user_id=u.user_id) AS feedback "
            "FROM users u ORDER BY u.user_id LIMIT ? OFFSET ?",
            -1 if limit is None else limit,
            offset,
        )
        return [UserSummary(**dict(row)) for row in rows]

    def revision(self, user_id: str) -> Revision:
        """Changes whenever the user's documents change, or the user is deleted and created
        again (a new incarnation: what was derived from the old one no longer holds)."""
        rows = self.db.rows("SELECT incarnation, revision FROM users WHERE user_id=?", user_id)
        if not rows:
            raise UserNotFoundError(user_id)
        return Revision(int(rows[0]["incarnation"]), int(rows[0]["revision"]))

    def documents(
        self, user_id: str, doc_ids: Sequence[str] | None = None, *, kind: str | None = None
    ) -> list[Document]:
        """The user's documents (all, those of one ``kind``, or the given ids in that order),
        oldest first."""
        if doc_ids is None:
            where, params = ("", (user_id,)) if kind is None else (" AND kind=?", (user_id, kind))
            rows = self.db.rows(
                f"SELECT * FROM documents WHERE user_id=?{where} ORDER BY time, doc_id", *params
            )
            return [document_of(row) for row in rows]
        if kind is not None:
            raise ValueError("documents: give doc_ids or a kind, not both")
        rows = self.db.rows_in(
            "SELECT * FROM documents WHERE user_id=? AND doc_id", doc_ids, user_id
        )
        found = {row["doc_id"]: document_of(row) for row in rows}
        return [found[doc_id] for doc_id in doc_ids if doc_id in found]

    def document_hashes(self, user_id: str) -> dict[str, str]:
        """doc_id -> content hash: what an index needs to bring itself up to date."""
        rows = self.db.rows("SELECT doc_id, content_hash FROM documents WHERE user_id=?", user_id)
        return {row["doc_id"]: row["content_hash"] for row in rows}

    def document_changes(self, user_id: str, since: int) -> tuple[dict[str, str], list[str]]:
        """What changed after revision ``since``: (doc_id -> content hash of documents added
        or edited, ids of documents deleted). Cost is in the changes, not the profile."""
        changed = self.db.rows(
            "SELECT doc_id, content_hash FROM documents WHERE user_id=? AND revision>?",
            user_id,
            since,
        )
        deleted = self.db.rows(
            "SELECT doc_id FROM document_deletions WHERE user_id=? AND revision>?", user_id, since
        )
        return {r["doc_id"]: r["content_hash"] for r in changed}, [r["doc_id"] for r in deleted]

    def interactions(self, user_id: str) -> list[Interaction]:
        rows = self.db.rows(
            "SELECT * FROM interactions WHERE user_id=? ORDER BY time, item_id, seq", user_id
        )
        return [interaction_of(row) for row in rows]

    def subjects(self, user_id: str) -> list[Subject]:
        rows = self.db.rows("SELECT * FROM subjects WHERE user_id=? ORDER BY name", user_id)
        return [subject_of(row) for row in rows]

    def feedback(self, user_id: str) -> list[Feedback]:
        rows = self.db.rows("SELECT * FROM feedback WHERE user_id=? ORDER BY time", user_id)
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
            rows = self.db.rows_in("SELECT * FROM items WHERE item_id", item_ids)
        return [item_of(row) for row in rows]

    def known_items(self, item_ids: Iterable[str]) -> set[str]:
        rows = self.db.rows_in("SELECT item_id FROM items WHERE item_id", set(item_ids))
        return {row["item_id"] for row in rows}

    def all_interactions(self) -> list[Interaction]:
        """Every interaction, for training a recommender over the whole catalog."""
        rows = self.db.rows("SELECT * FROM interactions ORDER BY user_id, time, item_id, seq")
        return [interaction_of(row) for row in rows]

    def recent_doc_ids(self, user_id: str, k: int) -> list[str]:
        """The user's k most recent documents (undated ones last), newest first."""
        # Two queries rather than ORDER BY (time IS NULL): each walks the (user, time, doc)
        # index backwards and stops after k rows, whatever the profile size.
        dated = self.db.rows(
            "SELECT doc_id FROM documents WHERE user_id=? AND time IS NOT NULL "
            "ORDER BY time DESC, doc_id DESC LIMIT ?",
            user_id,
            k,
        )
        undated = self.db.rows(
            "SELECT doc_id FROM documents WHERE user_id=? AND time IS NULL "
            "ORDER BY doc_id DESC LIMIT ?",
            user_id,
            k - len(dated),
        )
        return [row["doc_id"] for row in [*dated, *undated]]
