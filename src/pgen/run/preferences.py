"""The user's stated preferences behind the Engine's verbs: found in their incoming chat
turns (statements, and choices among the assistant's options; in the same transaction that
stores the turns), listed, added, edited and removed.

Every verb names the user, and reads and writes through the store's user-scoped calls: a
preference id of another user is "not found", exactly like an unknown id, and nothing is
written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import ValidationError

from pgen.context.base import ContextStore
from pgen.context.records import Document, Preference, Record
from pgen.errors import InvalidRequest, NotFound
from pgen.usermodel.choices import detected_choice
from pgen.usermodel.memory import MEMORY_KIND, speaker_of
from pgen.usermodel.stated import detected_preferences

USER_ROLE = "user"  # a transcript's role for the user's own turns
ASSISTANT_ROLE = "assistant"  # and for the assistant's


class PreferenceNotFoundError(NotFound):
    def __str__(self) -> str:
        return f"no preference {self.args[0]!r} of user {self.args[1]!r}"


def users_own_words(document: Document) -> bool:
    """Where preferences are looked for: the user's own chat turns (kind ``chat`` with no
    other speaker named, as the chat endpoint stores them, or spoken as ``user``, the role
    a chat transcript gives them). The assistant's turns, turns of a conversation between
    named people (LoCoMo's) and other documents (posts, reviews, abstracts) are the user's
    context, not things they asked the assistant to honour."""
    return document.kind == MEMORY_KIND and speaker_of(document) in (None, USER_ROLE)


def with_detected(
    store: ContextStore, records: Iterable[Record], offered: str | None = None
) -> list[Record]:
    """The records, then the preferences stated in their new or changed chat turns of the
    user's own (a turn stored already, unchanged, is not read again: a preference the user
    removed stays removed when the same turn arrives again), and the choices those turns
    make among options the assistant's turn just before offered. That turn is the chat
    turn before it among ``records`` or, for the first, ``offered`` (the chat endpoint
    stores only the user's turns: the assistant's last message comes with the request),
    or else the user's last stored turn when it is the assistant's (a transcript given in
    parts: the offer came in the part before)."""
    batch = list(records)
    turns = [r for r in batch if isinstance(r, Document) and r.kind == MEMORY_KIND]
    candidates = [r for r in turns if users_own_words(r)]
    if not candidates:
        return batch
    known: dict[str, dict[str, str]] = {}
    fresh = []
    for document in candidates:
        user = document.user_id
        if user not in known:
            known[user] = store.document_hashes(user) if store.has_user(user) else {}
        if known[user].get(document.doc_id) != document.content_hash:
            fresh.append(document)
    if offered is None and turns and turns[0] in fresh:
        offered = _stored_offer(store, turns[0])
    return [*batch, *detected_preferences(fresh), *_choices(turns, fresh, offered)]


def _stored_offer(store: ContextStore, turn: Document) -> str | None:
    """The text of the user's last stored turn, when the assistant said it before ``turn``."""
    if not store.has_user(turn.user_id):
        return None
    last = store.documents(turn.user_id, store.recent_doc_ids(turn.user_id, 1))
    if not last or last[0].kind != MEMORY_KIND or speaker_of(last[0]) != ASSISTANT_ROLE:
        return None
    said, now = last[0].time, turn.time
    return last[0].text if said is None or now is None or said <= now else None


def _choices(turns: list[Document], fresh: list[Document], offered: str | None) -> list[Record]:
    """The choices of the ``fresh`` user turns among the options of the assistant's turn
    just before each (in ``turns``, the batch's chat turns in spoken order; ``offered``
    before the first)."""
    new = {id(turn) for turn in fresh}
    found: list[Record] = []
    for position, turn in enumerate(turns):
        if id(turn) not in new:
            continue
        before = turns[position - 1] if position else None
        if before is None:
            offer = offered
        elif before.user_id == turn.user_id and speaker_of(before) == ASSISTANT_ROLE:
            offer = before.text
        else:
            offer = None
        choice = detected_choice(turn, offer) if offer else None
        if choice is not None:
            found.append(choice)
    return found


def preferences(store: ContextStore, user_id: str) -> list[Preference]:
    store.user(user_id)  # an unknown user: not found
    return store.preferences(user_id)


def _checked(**fields: object) -> Preference:
    try:
        return Preference.model_validate(fields)
    except ValidationError as error:
        issue = error.errors()[0]
        where = ".".join(str(part) for part in issue["loc"]) or "preference"
        raise InvalidRequest(f"preference field '{where}': {issue['msg']}") from None


def add_preference(store: ContextStore, user_id: str, text: str) -> Preference:
    """A preference the user gives as such (no source turn); the user must exist."""
    store.user(user_id)
    record = _checked(
        user_id=user_id,
        preference_id=f"pref-{uuid.uuid4().hex[:24]}",
        text=text.strip(),
        origin="user",
        time=datetime.now(UTC),
    )
    store.add([record])
    return record


def _one(store: ContextStore, user_id: str, preference_id: str) -> Preference:
    store.user(user_id)
    found = store.preferences(user_id, [preference_id])
    if not found:
        raise PreferenceNotFoundError(preference_id, user_id)
    return found[0]


def edit_preference(store: ContextStore, user_id: str, preference_id: str, text: str) -> Preference:
    """The preference restated in the user's words: it keeps its id and the turn it came
    from, loses the span (the text is no longer that span's) and is the user's own now."""
    existing = _one(store, user_id, preference_id)
    record = _checked(
        user_id=user_id,
        preference_id=existing.preference_id,
        text=text.strip(),
        origin="user",
        source=existing.source,
        time=datetime.now(UTC),
    )
    store.add([record])
    return record


def remove_preference(store: ContextStore, user_id: str, preference_id: str) -> Preference:
    """The removed preference (unknown, or another user's: not found, nothing removed)."""
    existing = _one(store, user_id, preference_id)
    if not store.delete_preferences(user_id, [preference_id]):
        raise PreferenceNotFoundError(preference_id, user_id)  # removed meanwhile
    return existing
