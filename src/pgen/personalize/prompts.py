"""Formatting the user's documents into a prompt that always fits the model.

As in LaMP, each retrieved item gets an equal share of the tokens left after the
instruction and the template, and is truncated to that share; documents that would get
less than ``MIN_ITEM_TOKENS`` are dropped rather than cut to nothing.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

from pgen.context.records import Document
from pgen.models.base import Message, TextModel

MIN_ITEM_TOKENS = 16


@dataclass(frozen=True)
class Packed:
    text: str
    used: list[str]  # doc ids that made it in


def document_text(document: Document) -> str:
    return f"{document.title}: {document.text}" if document.title else document.text


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


def template_tokens(model: TextModel) -> int:
    """What the chat template adds around a system and a user message, plus a margin for
    parts that tokenize differently once joined (32 for a model that cannot render)."""
    try:
        return _TEMPLATE_TOKENS[model]  # the same for every request: measured once per model
    except (KeyError, TypeError):
        pass
    render = getattr(model, "render", None)
    empty = [Message("system", ""), Message("user", "")]
    count = 32 if render is None else model.count_tokens(render(empty)) + 8
    with contextlib.suppress(TypeError):  # a model that cannot be weakly referenced
        _TEMPLATE_TOKENS[model] = count
    return count


_TEMPLATE_TOKENS: weakref.WeakKeyDictionary[TextModel, int] = weakref.WeakKeyDictionary()


def remaining_budget(model: TextModel, budget: int, *fixed_parts: str) -> int:
    """Tokens left for context once the fixed parts of the prompt and the chat
    template's own tokens are counted."""
    return budget - sum(model.count_tokens(part) for part in fixed_parts) - template_tokens(model)
