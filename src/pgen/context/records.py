"""The personalized context: pydantic records for everything known about a user.

Every record that belongs to a user carries ``user_id``; the catalog (`Item`) is shared.
JSONL ingestion names the record type in a ``type`` field (see ``RECORD_TYPES``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pgen.context.validation import check_id, check_json, check_media_path, check_rating

Id = str
MAX_PREFERENCE_CHARS = 2000  # a preference is a sentence or two, not a document


def _id(value: str | None) -> str | None:
    return None if value is None else check_id(value)


def _utc(value: datetime | None) -> datetime | None:
    """Times in UTC: with and without a zone they compare (and sort in SQL) correctly.
    A time without a zone is taken as UTC."""
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # Lone surrogates anywhere (JSON "\ud800") cannot be stored as UTF-8; nesting
        # and non-finite numbers in free-form fields are bounded here too.
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, str | dict | list):
                    try:
                        check_json(value)
                    except ValueError as error:
                        raise ValueError(f"field {str(key)[:40]!r}: {error}") from None
        return data

    @field_validator("time", mode="after", check_fields=False)
    @classmethod
    def _time_in_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

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

    _check_id = field_validator("user_id")(_id)


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

    _check_ids = field_validator("user_id", "doc_id", "kind")(_id)

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

    _check_id = field_validator("item_id")(_id)

    @field_validator("image_path")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        return None if value is None else check_media_path(value)


class Interaction(_Record):
    """A behavior of a user on an item."""

    user_id: Id
    item_id: Id
    action: str = "rate"
    rating: float | None = None
    time: datetime | None = None

    _check_ids = field_validator("user_id", "item_id", "action")(_id)
    _check_rating = field_validator("rating", mode="before")(check_rating)


class Subject(_Record):
    """A named personal concept with reference images: "my dog Rex"."""

    user_id: Id
    name: str
    class_word: str
    image_paths: list[str] = Field(min_length=1, max_length=1000)

    _check_ids = field_validator("user_id", "name", "class_word")(_id)

    @field_validator("image_paths")
    @classmethod
    def _check_paths(cls, value: list[str]) -> list[str]:
        return [check_media_path(path) for path in value]


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

    _check_ids = field_validator("user_id", "feedback_id", "output_id")(_id)

    @field_validator("thumbs", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # JSON true is not thumbs up: 1 or -1 only
            raise ValueError("must be -1 or 1")
        return value

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


class Preference(_Record):
    """Something the user said they want or avoid ("I'm vegetarian", "no nightlife"): kept
    apart from their documents so that it is never lost among them, however long ago it was
    said. ``source`` is the document (a chat turn) it was stated in and ``start``/``end``
    its span in that document's text; ``origin`` says whether the user gave it as such
    (``user``), pgen found it in their words (``detected``), or it is a pick among options
    the assistant offered (``choice``: the offer and the pick, pgen.usermodel.choices)."""

    user_id: Id
    preference_id: Id
    text: str = Field(min_length=1, max_length=MAX_PREFERENCE_CHARS)
    origin: Literal["user", "detected", "choice"] = "user"
    source: Id | None = None
    start: int | None = Field(None, ge=0)
    end: int | None = Field(None, ge=1)
    time: datetime | None = None

    _check_ids = field_validator("user_id", "preference_id", "source")(_id)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _span(self) -> Preference:
        if (self.start is None) != (self.end is None):
            raise ValueError("a span needs both start and end")
        if self.start is not None:
            if self.source is None:
                raise ValueError("a span (start, end) needs the source document it is in")
            if self.end is not None and self.end <= self.start:
                raise ValueError("end must be after start")
        return self


Record = User | Document | Item | Interaction | Subject | Feedback | Preference

RECORD_TYPES: dict[str, type[_Record]] = {
    "user": User,
    "document": Document,
    "item": Item,
    "interaction": Interaction,
    "subject": Subject,
    "feedback": Feedback,
    "preference": Preference,
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
