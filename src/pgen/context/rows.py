"""Records from database rows, and times as stored: one definition for every SQL backend.

A row is anything read by column name (``sqlite3.Row``, psycopg's dict rows). JSON columns
hold text in both backends; times are fixed-width UTC text (``time_text``), so comparing
the text in SQL (recency, ORDER BY) compares the instants, whatever zone the data came in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pgen.context.records import Document, Feedback, Interaction, Item, Preference, Subject


def time_text(value: datetime | None) -> str | None:
    """A time as stored: UTC, microseconds, fixed width (a naive time is taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=UTC).isoformat(timespec="microseconds")


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def document_of(row: Any) -> Document:
    return Document(
        user_id=row["user_id"],
        doc_id=row["doc_id"],
        kind=row["kind"],
        title=row["title"],
        text=row["text"],
        time=parse_time(row["time"]),
        fields=json.loads(row["fields"]),
    )


def interaction_of(row: Any) -> Interaction:
    return Interaction(
        user_id=row["user_id"],
        item_id=row["item_id"],
        action=row["action"],
        rating=row["rating"],
        time=parse_time(row["time"]),
    )


def subject_of(row: Any) -> Subject:
    return Subject(
        user_id=row["user_id"],
        name=row["name"],
        class_word=row["class_word"],
        image_paths=json.loads(row["image_paths"]),
    )


def feedback_of(row: Any) -> Feedback:
    return Feedback(**{**dict(row), "time": parse_time(row["time"])})


def item_of(row: Any) -> Item:
    return Item(
        item_id=row["item_id"],
        title=row["title"],
        text=row["text"],
        attributes=json.loads(row["attributes"]),
        image_path=row["image_path"],
    )


def preference_of(row: Any) -> Preference:
    return Preference(
        user_id=row["user_id"],
        preference_id=row["preference_id"],
        text=row["text"],
        origin=row["origin"],
        source=row["source"],
        start=row["span_start"],
        end=row["span_end"],
        time=parse_time(row["time"]),
    )


def preference_params(record: Preference) -> tuple[Any, ...]:
    """A preference's columns in the order both backends' upserts name them."""
    return (
        record.user_id,
        record.preference_id,
        record.text,
        record.origin,
        record.source,
        record.start,
        record.end,
        time_text(record.time),
    )
