"""Grounding a written summary in what the user gave: names and numbers it may use.

A **mention** is a capitalized word that does not start a sentence (a name: a person,
place, brand, title; "I" excluded) or a number (digits, with any . , inside). A mention is
**supported** when it appears, case-insensitively as a whole word, in the source texts
(the user's documents the summary was written from) or in their profile attributes (names
and values). A small model summarizing a blogger invents a "Sarah" or "2015" that appears
nowhere; ``grounded`` cuts every sentence with an unsupported mention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

WORD = re.compile(r"[^\W\d_][\w'’-]*|\d+(?:[.,]\d+)*")
# A sentence runs to . ! ? … (a dot inside a word or number, as in 3.5 or e.g, does not end it).
SENTENCE = re.compile(r"(?:[^.!?…]|\.(?=\w))+(?:[.!?…]+[\"'”’)\]]*|$)\s*")


def sentences(text: str) -> list[str]:
    """The text's sentences, each with its end mark and the space after it."""
    return [part for part in SENTENCE.findall(text) if part.strip()]


def mentions(text: str) -> list[str]:
    """Names (capitalized words not first in their sentence, "I" aside) and numbers."""
    found = []
    for sentence in sentences(text):
        for position, match in enumerate(WORD.finditer(sentence)):
            word = match.group().rstrip("'’-")
            name = position > 0 and word[0].isupper() and word != "I" and word[:2] != "I'"
            if name or word[0].isdigit():
                found.append(word)
    return found


def vocabulary(sources: Iterable[str]) -> set[str]:
    """Every word and number in the sources, lower-cased (what a mention is looked up in)."""
    return {
        match.group().lower().rstrip("'’-") for text in sources for match in WORD.finditer(text)
    }


def unsupported(text: str, known: set[str]) -> list[str]:
    """The text's mentions that appear nowhere in ``known`` (see ``vocabulary``)."""
    return [mention for mention in mentions(text) if mention.lower() not in known]


def grounded(text: str, known: set[str]) -> tuple[str, list[str]]:
    """(the text without its sentences that name something unsupported, what was cut)."""
    kept, cut = [], []
    for sentence in sentences(text):
        missing = unsupported(sentence, known)
        if missing:
            cut += missing
        else:
            kept.append(sentence)
    return "".join(kept).strip(), cut
