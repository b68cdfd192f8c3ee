"""A user's documents as supervised examples for their own adapter (OPPU's formulation).

Each document becomes one (instruction → output) example. For the benchmark tasks a
profile item is put through the task's own question shape: a news article → its category,
a review → its rating, an abstract → its title; the user's adapter then learns how *this*
user answers the task. Plain documents teach the user's writing: the document's kind and
title as the instruction, its text as the output.

Examples are built from one user's ``store.documents(user_id)`` and nothing else: OPPU's
reference code kept one list across users, so user i's "personal" adapter was trained on
users 0..i; here the list is made fresh per call and every example names its document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pgen.context.base import ContextStore
from pgen.context.records import Document


@dataclass(frozen=True)
class Example:
    user_id: str
    doc_id: str
    instruction: str
    output: str


Template = Callable[[Document], tuple[str, str] | None]  # None: the document does not fit


def _field(document: Document, *names: str) -> str | None:
    for name in names:
        value = document.fields.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _title(document: Document) -> str | None:
    return document.title.strip() if document.title and document.title.strip() else None


def _classify(document: Document) -> tuple[str, str] | None:
    label = _field(document, "category")
    if label is not None:
        return f"Which category does this article relate to? article: {document.text}", label
    label = _field(document, "tag")
    if label is not None:
        return f"Which tag does this movie relate to? description: {document.text}", label
    return None


def _rating(*names: str) -> Template:
    def template(document: Document) -> tuple[str, str] | None:
        score = _field(document, *names)
        if score is None:
            return None
        question = (
            "What is the score of the following review on a scale of 1 to 5? just answer "
            f"with 1, 2, 3, 4, or 5 without further explanation. review: {document.text}"
        )
        return question, score.removesuffix(".0")

    return template


def _title_of(prompt: str) -> Template:
    def template(document: Document) -> tuple[str, str] | None:
        title = _title(document)
        return (f"{prompt} {document.text}", title) if title and document.text else None

    return template


def _text_from(prompt: str) -> Template:
    def template(document: Document) -> tuple[str, str] | None:
        title = _title(document)
        return (f"{prompt} {title}", document.text) if title and document.text else None

    return template


def _tweet(document: Document) -> tuple[str, str] | None:
    return ("Write a tweet in your own words.", document.text) if document.text else None


def plain(document: Document) -> tuple[str, str] | None:
    """Any document: its kind and title as the instruction, its text as the output."""
    if not document.text.strip():
        return None
    title = _title(document)
    about = f' titled "{title}"' if title else ""
    return f"Write a {document.kind}{about}.", document.text


TEMPLATES: dict[str, Template] = {
    "LaMP_1": _title_of("Generate a title for the following abstract of a paper:"),
    "LaMP_2": _classify,
    "LaMP_3": _rating("score"),
    "LaMP_4": _title_of("Generate a headline for the following article:"),
    "LaMP_5": _title_of("Generate a title for the following abstract of a paper:"),
    "LaMP_6": _title_of("Generate a subject for the following email:"),
    "LaMP_7": _tweet,
    "amazon_rating": _rating("overall"),
    "amazon_review": _text_from("Write the review text of your review summarized as:"),
    "LongLaMP_abstract_generation": _text_from("Write the abstract of the paper titled:"),
    "LongLaMP_product_review": _text_from("Write the review text of your review summarized as:"),
    "LongLaMP_topic_writing": _text_from("Write a post about:"),
}


def template_for(task: str | None) -> Template:
    if task is None:
        return plain
    if task not in TEMPLATES:
        raise ValueError(f"no example template for task {task!r}; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[task]


def user_examples(store: ContextStore, user_id: str, task: str | None = None) -> list[Example]:
    """One user's documents as examples (documents the template cannot use are skipped;
    for a task, a document it cannot use still teaches through the plain template)."""
    template = template_for(task)
    examples: list[Example] = []  # fresh per call: never another user's examples
    for document in store.documents(user_id):
        if document.user_id != user_id:  # the store scopes by user; say so if it ever did not
            raise RuntimeError(f"store returned document {document.doc_id} of another user")
        pair = template(document) or plain(document)
        if pair is not None:
            examples.append(Example(user_id, document.doc_id, pair[0], pair[1]))
    return examples
