"""Formatting the user's documents into a prompt that always fits the model.

As in LaMP, each retrieved item gets an equal share of the tokens left after the
instruction and the template, and is truncated to that share; documents that would get
less than ``MIN_ITEM_TOKENS`` are dropped rather than cut to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgen.components import remaining_budget as remaining_budget  # re-exported for strategies
from pgen.context.records import Document
from pgen.models.base import TextModel

MIN_ITEM_TOKENS = 16


@dataclass(frozen=True)
class Packed:
    text: str
    used: list[str]  # doc ids that made it in


def document_text(document: Document) -> str:
    return f"{document.title}: {document.text}" if document.title else document.text


def attribute_lines(attributes: dict[str, object]) -> str:
    """Profile attributes as a list, one ``- name: value`` a line, sorted by name."""
    return "\n".join(f"- {name}: {value}" for name, value in sorted(attributes.items()))


def pack_documents(
    documents: list[Document], model: TextModel, budget: int, *, numbered: bool = True
) -> Packed:
    """The documents as a list, each truncated to budget / n tokens, in the given order."""
    count = len(documents)
    while count and budget // count < MIN_ITEM_TOKENS:
        count -= 1  # fewer documents, each long enough to say something
    lines, used = [], []
    for position, document in enumerate(documents[:count], start=1):
        body = model.truncate(" ".join(document_text(document).split()), budget // count - 4)
        lines.append(f"[{position}] {body}" if numbered else body)
        used.append(document.doc_id)
    return Packed("\n".join(lines), used)
