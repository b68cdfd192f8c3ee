"""LaMP question files (``LaMP_k_<split>_questions.json``), read once for every use.

A file is a JSON list of questions ``{id, input, profile}``; each question carries its
user's profile, a list of entries that become ``Document`` records of one user. Both
``pgen ingest`` (user id: the question id) and ``bench text`` (user id:
``LaMP_k/<question id>``) read them here, so the documents, and the prompts built from
them, are the same whichever way the data came in.

Profile entries keep their text in ``text`` (news, reviews, tweets, e-mails),
``abstract`` (papers) or ``description`` (the movie-tagging version of LaMP-2), with an
optional ``title`` and ``date``. The label a user gave (``category``, ``tag``, ``score``)
is shown in the title, where prompts show it (LaMP's own prompts show it too); every field
of the entry is kept in ``Document.fields``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pgen.context.formats import FormatError, labelled_title, text_of
from pgen.context.records import Document
from pgen.context.validation import check_id

TEXT_FIELDS = ("text", "abstract", "description")
LABEL_FIELDS = {"category": "category", "tag": "tag", "score": "rating"}  # shown in the title
DOCUMENT_KIND = "lamp-profile"


@dataclass(frozen=True)
class Question:
    id: str
    raw_id: Any  # the id as the file holds it (LaMP's evaluator tells 1 from "1")
    input: str
    profile: tuple[Document, ...]


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, "%Y-%m-%d %H:%M:%S")):
        try:
            return parse(str(value))
        except ValueError:
            continue
    return None


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"field '{'.'.join(str(p) for p in issue['loc']) or 'record'}': {issue['msg']}"
        for issue in error.errors()
    )


def profile_document(user_id: str, entry: Any, position: int, where: str) -> Document:
    """One profile entry as a document of ``user_id``; ``where`` names the question."""
    here = f"{where} profile[{position}]"
    if not isinstance(entry, dict):
        raise FormatError(here, "expected a JSON object")
    text_field = next((f for f in TEXT_FIELDS if isinstance(entry.get(f), str)), None)
    if text_field is None:
        raise FormatError(here, "field 'text' (or 'abstract', 'description') is missing")
    if entry.get("id") is None:
        # A JSONL document must name its doc_id; a profile entry is one, by the same rule.
        raise FormatError(here, "field 'id' is missing (it becomes the document's doc_id)")
    title = text_of(entry["title"]) if entry.get("title") else None
    for name, shown in LABEL_FIELDS.items():
        if name in entry:
            title = labelled_title(title, shown, entry[name])
    try:
        return Document(
            user_id=user_id,
            doc_id=text_of(entry["id"]),
            kind=DOCUMENT_KIND,
            text=entry[text_field],
            title=title,
            time=_time(entry.get("date")),
            fields=dict(entry),
        )
    except ValidationError as error:
        raise FormatError(here, _describe(error)) from None


def read_questions(path: Path, data: Any, user_of: Callable[[str], str] = str) -> list[Question]:
    """The questions of a parsed LaMP file, their profiles as documents of ``user_of(id)``.
    A question lacking ``id``, ``input`` or ``profile``, or a profile entry without text,
    raises a ``FormatError`` naming the file and the question."""
    if not isinstance(data, list):
        raise FormatError(str(path), "expected a LaMP questions file (a JSON list of questions)")
    questions = []
    for index, question in enumerate(data):
        if not isinstance(question, dict) or not {"id", "input", "profile"} <= set(question):
            raise FormatError(
                f"{path}: question {index}", "a LaMP question needs 'id', 'input' and 'profile'"
            )
        if not isinstance(question["profile"], list):
            raise FormatError(f"{path}: question {index}", "'profile' must be a list")
        qid = text_of(question["id"])
        user_id = user_of(qid)
        try:  # the question id names a user: the rules of every user id (records.User)
            check_id(qid)
            check_id(user_id)
        except ValueError as error:
            raise FormatError(
                f"{path}: question {index}", f"field 'id' (the user id): {error}"
            ) from None
        where = f"{path}: question {qid}"
        profile = tuple(
            profile_document(user_id, entry, i, where)
            for i, entry in enumerate(question["profile"])
        )
        questions.append(Question(qid, question["id"], text_of(question["input"]), profile))
    return questions
