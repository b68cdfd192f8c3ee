"""How much of a generated text repeats the texts its prompt carried.

``copied``: the share of the output's word 5-grams (lowercased, split on whitespace) found
in the sources. The attribution benchmark reports it beside recognizability, and every
text output that used the user's documents records it (``details["copied"]``), with a note
when most of the output is the user's own old words: a ghostwritten post that hands back
one of their posts is not a new text, whatever a style measure says.
"""

from __future__ import annotations

from collections.abc import Iterable

COPY_NGRAM = 5  # words: a run this long found in the prompt's texts was copied from them


def word_ngrams(text: str, n: int = COPY_NGRAM) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def copied(output: str, sources: Iterable[str], n: int = COPY_NGRAM) -> float:
    """The share of the output's word n-grams found in ``sources``; 0 for an output
    shorter than n words."""
    grams = word_ngrams(output, n)
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    for text in sources:
        seen |= word_ngrams(text, n)
    return len(grams & seen) / len(grams)
