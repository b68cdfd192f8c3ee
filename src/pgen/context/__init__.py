"""Personalized context: the records, the store protocol and its implementations."""

from pgen.context.base import (
    ContextStore,
    IngestStats,
    OutputNotFoundError,
    Revision,
    StoredOutput,
    StoreError,
    UserNotFoundError,
    UserSummary,
)
from pgen.context.records import (
    RECORD_TYPES,
    Document,
    Feedback,
    Interaction,
    Item,
    Preference,
    Record,
    Subject,
    User,
)

__all__ = [
    "RECORD_TYPES",
    "ContextStore",
    "Document",
    "Feedback",
    "IngestStats",
    "Interaction",
    "Item",
    "OutputNotFoundError",
    "Preference",
    "Record",
    "Revision",
    "StoreError",
    "StoredOutput",
    "Subject",
    "User",
    "UserNotFoundError",
    "UserSummary",
]
