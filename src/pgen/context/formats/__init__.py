"""Readers of the data formats pgen takes in, each written once and shared.

``lamp``: LaMP question files (``pgen ingest`` and ``bench text`` both read them);
``amazon``: Amazon review JSON Lines (``bench text``'s review tasks and ``bench rec``);
``jsonl``: JSON Lines with an error policy the caller states. A reader raises
``FormatError`` naming where the problem is; each front end turns it into its own error
type (``IngestError``, ``DataFormatError``, ``ValueError``) without rewording it.
"""

from __future__ import annotations

from typing import Any

from pgen.errors import InvalidRequest


class FormatError(InvalidRequest):
    """Input that does not match its format; ``where`` is "file:line" or "file: question id"."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def text_of(value: Any) -> str:
    return "" if value is None else str(value)


def labelled_title(title: str | None, label: str, value: Any) -> str | None:
    """A document title that also shows the label the user gave (category, rating).

    Strategies render a document as "title: text"; a profile entry's label is what makes
    it an example for classification and rating tasks, so it goes where the prompt will
    show it. The raw value stays in ``Document.fields``.
    """
    if value is None or value == "":
        return title
    shown = f"[{label}: {value}]"
    return f"{shown} {title}" if title else shown
