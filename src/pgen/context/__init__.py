"""Personalized context: the data model and its stores."""

from pgen.context.models import (
    RECORD_TYPES,
    Document,
    Feedback,
    Interaction,
    Item,
    Record,
    Subject,
    User,
)
from pgen.context.store import Store, UserNotFoundError

__all__ = [
    "RECORD_TYPES",
    "Document",
    "Feedback",
    "Interaction",
    "Item",
    "Record",
    "Store",
    "Subject",
    "User",
    "UserNotFoundError",
]
