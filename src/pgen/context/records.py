"""The personalized context: pydantic records for everything known about a user.

Every record that belongs to a user carries ``user_id``; the catalog (`Item`) is shared.
JSONL ingestion names the record type in a ``type`` field (see ``RECORD_TYPES``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Id = str


def _nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any, info: Any) -> Any:
        # Data sets use numeric ids (MovieLens, LaMP); we store every id as text.
        if (
            info.field_name.endswith("_id")
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            return str(value)
        return value


class User(_Record):
    """A user and their profile attributes (age, occupation, stated preferences...)."""

    user_id: Id
    profile: dict[str, Any] = Field(default_factory=dict)

    _check_id = field_validator("user_id")(_nonempty)


class Document(_Record):
    """Text the user wrote: a review, an e-mail, a paper abstract, a tweet."""

    user_id: Id
    doc_id: Id
    kind: str = "text"
    text: str
    title: str | None = None
    time: datetime | None = None
    # Fields a data set carries beyond ours (LaMP's "score", "category", ...), kept as-is.
    fields: dict[str, Any] = Field(default_factory=dict)

    _check_ids = field_validator("user_id", "doc_id")(_nonempty)

    @property
    def content_hash(self) -> str:
        """Changes whenever anything a retriever or embedder sees changes."""
        return content_hash(self.title or "", self.text)


class Item(_Record):
    """A catalog entry users interact with (movie, product, article)."""

    item_id: Id
    title: str = ""
    text: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)
    image_path: str | None = None

    _check_id = field_validator("item_id")(_nonempty)


class Interaction(_Record):
    """A behavior of a user on an item."""

    user_id: Id
    item_id: Id
    action: str = "rate"
    rating: float | None = None
    time: datetime | None = None


class Subject(_Record):
    """A named personal concept with reference images: "my dog Rex"."""

    user_id: Id
    name: str
    class_word: str
    image_paths: list[str] = Field(min_length=1)


class Feedback(_Record):
    """A user's judgement of generated output: thumbs on one output, or a chosen/rejected pair."""

    user_id: Id
    feedback_id: Id
    output_id: Id | None = None
    thumbs: Literal[-1, 1] | None = None
    prompt: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    time: datetime | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Feedback:
        pair = self.chosen is not None and self.rejected is not None
        thumbs = self.output_id is not None and self.thumbs is not None
        if pair == thumbs:
            raise ValueError(
                "feedback needs either output_id with thumbs (-1 or 1), "
                "or a chosen/rejected pair, and not both"
            )
        return self


Record = User | Document | Item | Interaction | Subject | Feedback

RECORD_TYPES: dict[str, type[_Record]] = {
    "user": User,
    "document": Document,
    "item": Item,
    "interaction": Interaction,
    "subject": Subject,
    "feedback": Feedback,
}


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def to_json(value: Any) -> str:
    """Stable JSON for the store's free-form columns."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
