"""A user's conversation memory: each turn stored once as one of their documents, and
recalled by the ``memory`` retriever (pgen.usermodel.memory). ``Engine.remember`` and
``Engine.recall`` call these; the chat endpoint (tenant setting ``memory``) and ``pgen
bench memory`` both go through them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pgen.context.base import ContextStore
from pgen.context.records import Document, User, content_hash
from pgen.run.preferences import with_detected
from pgen.usermodel.memory import MEMORY_KIND, MemoryRetriever, MemorySettings
from pgen.usermodel.retrievers import Retrievers

__all__ = ["MEMORY_KIND", "MemorySettings", "recall_turns", "remember", "turn_document"]


def turn_document(
    user_id: str, text: str, *, when: datetime | None = None, speaker: str | None = None
) -> Document:
    """A turn as a document. Its id is the hash of what was said (and by whom), so the
    same turn twice is one document. The speaker and the date go in the title, which the
    retrievers read: "when did Caroline ..." can match both."""
    when = when or datetime.now(UTC)
    doc_id = f"chat-{content_hash(speaker or '', text)[:24]}"
    title = f"{when.date().isoformat()} {speaker}" if speaker else None
    return Document(
        user_id=user_id, doc_id=doc_id, kind=MEMORY_KIND, text=text, title=title, time=when
    )


def remember(
    store: ContextStore, user_id: str, turns: list[Document], offered: str | None = None
) -> int:
    """Store the turns not stored yet, and the preferences the user states in them (or
    shows by a choice among the options of the assistant's turn before, ``offered`` for the
    first), in one transaction; creates the user on their first turn. Returns how many
    turns were new."""
    records: list[Any] = []
    known: set[str] = set()
    if not store.has_user(user_id):
        records.append(User(user_id=user_id))
    else:
        known = set(store.document_hashes(user_id))
    fresh = {t.doc_id: t for t in turns if t.text.strip() and t.doc_id not in known}
    records += fresh.values()
    if records:
        # The preferences the user states in these turns go in the same transaction.
        store.add(with_detected(store, records, offered))
    return len(fresh)


def recall_turns(
    retrievers: Retrievers,
    user_id: str,
    query: str,
    k: int,
    settings: MemorySettings | None = None,
) -> list[Document]:
    """The user's ``k`` remembered turns for ``query``: the ``memory`` retriever's recall
    (pgen.usermodel.memory), with other settings when a benchmark sweeps them."""
    registered = retrievers.get("memory")
    assert isinstance(registered, MemoryRetriever)
    if settings is None or settings == registered.settings:
        return registered.recall(user_id, query, k)
    swept = MemoryRetriever(retrievers.store, retrievers.get, settings)
    return swept.recall(user_id, query, k)
