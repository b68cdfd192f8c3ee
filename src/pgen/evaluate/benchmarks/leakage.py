"""The leakage guard every text task goes through: no profile document gives the answer away.

A profile can hold the answer itself. Amazon 5-core files repeat a review for every variant
of a product, so the review to be written is often word for word in the writer's profile;
a LaMP profile may hold the very article (with its category) or review (with its score)
that the question asks about. A retrieval strategy then "wins" by copying. So, for every
example, a profile document is removed, and counted by reason, when

* its text, or its title without the shown label, equals the gold output or nearly does
  (generation tasks; for label tasks the gold is a label, not text to compare), or
* its text equals the text the question asks about (the example's retrieval query: the
  review to rate, the article to tag or title), or nearly does,

where "nearly" is a ROUGE-L F-measure above ``NEAR`` (rouge-score's tokenizer, no
stemming: the metric the generation tasks are scored with). Texts with no tokens (ROUGE
cannot compare them) count only when equal.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from pgen.context.records import Document
from pgen.evaluate.benchmarks.tasks import Example, Kind
from pgen.evaluate.metrics.overlap import rouge_scores

NEAR = 0.9
REPEATS_GOLD = f"profile document repeating the gold output (equal or ROUGE-L > {NEAR})"
REPEATS_INPUT = (
    f"profile document repeating the text the question asks about (equal or ROUGE-L > {NEAR})"
)
_LABEL = re.compile(r"^\[[^\]]*\]\s*")  # "[rating: 4] " put in titles by the loaders


def _tokens(text: str) -> list[str]:
    """rouge-score's default tokenizer: lowercase, non-alphanumerics to spaces."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def repeats(text: str, target: str) -> bool:
    """``text`` equals ``target`` (case and spacing aside) or has ROUGE-L F > ``NEAR``."""
    if not text.strip() or not target.strip():
        return False
    if _normal(text) == _normal(target):
        return True
    ours, theirs = _tokens(text), _tokens(target)
    if not ours or not theirs:
        return False
    # The LCS is at most the bag-of-words overlap: a cheap bound that spares the LCS for
    # nearly every pair (a 200-word abstract against a 20-word query never gets close).
    overlap = sum((Counter(ours) & Counter(theirs)).values())
    if 2 * overlap / (len(ours) + len(theirs)) <= NEAR:
        return False
    return float(rouge_scores([text], [target], "rouge-L")[0]) > NEAR


def leak(document: Document, example: Example, kind: Kind) -> str | None:
    """Why this document gives the example's answer away, or None."""
    if kind == "generation":
        title = _LABEL.sub("", document.title or "")
        if repeats(document.text, example.gold) or repeats(title, example.gold):
            return REPEATS_GOLD
    if example.query and repeats(document.text, example.query):
        return REPEATS_INPUT
    return None


def guard(examples: Iterable[Example], kind: Kind) -> list[Example]:
    """The examples with leaking documents removed from their profiles; each example's
    ``excluded`` says what was removed from it, so a report can count over the examples
    it ran."""
    guarded = []
    for example in examples:
        kept, removed = [], list(example.excluded)
        for document in example.profile:
            reason = leak(document, example, kind)
            if reason is None:
                kept.append(document)
            else:
                removed.append(reason)
        if len(kept) < len(example.profile):
            example = replace(example, profile=tuple(kept), excluded=tuple(removed))
        guarded.append(example)
    return guarded


def excluded_counts(examples: Iterable[Example]) -> Counter[str]:
    """Reason -> profile documents removed, over these examples."""
    return Counter(reason for example in examples for reason in example.excluded)
