"""Optional answer extraction for label tasks: not LaMP's rule, and always labelled as such.

LaMP scores the raw generated text, so "The answer is [2]" is wrong for the gold "[2]".
Instruction-tuned small models rarely answer with the bare label, which makes every
strategy score 0 and hides differences between them. ``first_label`` is an opt-in
reading of the output (``--answers first-label``): the label that occurs first in it,
case-insensitively, as a whole word (a bracketed label such as "[2]" also matches a bare
"2"; a rating matches a standalone digit 1-5). List numbering is not an answer: an output
that is a numbered list of two or more items ("1. 1\n2.") gives no label, and a single
item's number ("1. The score is 4") is skipped. Nothing found: the raw text, still wrong.

``choice`` (``--answers choice``) does not generate at all: the model scores every label as
its whole reply to the same prompt and the most likely one is the answer (the
log-likelihood ranking of multiple-choice evaluation). It measures what the model knows
about the user's label even when it cannot follow the output format.

``choice-calibrated`` (``--answers choice-calibrated``) corrects a small model's bias toward
some labels whatever the question (SmolLM2-135M picks LaMP-2's "women" for every article of
the dev samples, in every setting, docs/benchmarks.md):
batch calibration (Zhou et al., ICLR 2024). Each question's label log-probabilities are
normalized over the label set, the label prior is their mean probability over all the
questions of the setting, and the answer is the label with the highest log p(label |
question) - log prior(label). It reuses the scores cached by ``choice``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

CHOICE = "choice"
CHOICE_CALIBRATED = "choice-calibrated"
CHOICE_MODES = (CHOICE, CHOICE_CALIBRATED)  # answers chosen from label scores, not generated
ANSWER_MODES = ("raw", "first-label", *CHOICE_MODES)


def _pattern(label: str) -> str:
    escaped = re.escape(label.lower())
    bare = re.fullmatch(r"\[(\w+)\]", label)
    if bare:
        escaped = rf"(?:{escaped}|{re.escape(bare.group(1))})"
    # Not inside a longer word or number ("womens", "3.5").
    if bare:
        return rf"(?<![\w\[])(?<!\d\.){escaped}(?![\w\]])(?!\.\d)"
    return rf"(?<!\w)(?<!\d\.){escaped}(?!\w)(?!\.\d)"


# "1." or "2)" opening a line, then a space or the end of the line: a list item's number
# (counted to tell a list); blanked only when the item says something after it ("4." alone
# is an answer).
_ITEM_NUMBER = re.compile(r"^[ \t]*\d+[.)](?=[ \t]|$)", re.MULTILINE)
_NUMBERED_ITEM = re.compile(r"^[ \t]*\d+[.)](?=[ \t]+\S)", re.MULTILINE)


def _without_numbering(text: str) -> str | None:
    """``text`` with a list item's number blanked out; None when it is a numbered list of
    two or more items, which names several candidates rather than one answer."""
    if len(_ITEM_NUMBER.findall(text)) >= 2:
        return None
    # Blanked, not removed: positions (which label comes first) stay as they were.
    return _NUMBERED_ITEM.sub(lambda found: " " * len(found.group()), text)


def first_label(text: str, labels: Sequence[str]) -> str:
    """The label occurring earliest in ``text`` (longest wins a tie), else ``text``."""
    unnumbered = _without_numbering(text)
    if unnumbered is None:
        return text
    lowered = unnumbered.lower()
    best: tuple[int, int, str] | None = None
    for label in labels:
        found = re.search(_pattern(label), lowered)
        if found and (best is None or (found.start(), -len(label)) < best[:2]):
            best = (found.start(), -len(label), label)
    return best[2] if best else text


def read_answers(outputs: Sequence[str], labels: Sequence[str], mode: str) -> list[str]:
    if mode not in ANSWER_MODES:
        raise ValueError(f"unknown answer mode {mode!r}; known: {', '.join(ANSWER_MODES)}")
    if mode in ("raw", *CHOICE_MODES) or not labels:  # a chosen answer is a label already
        return list(outputs)
    return [first_label(text, labels) for text in outputs]


def calibrated_choices(logprobs: np.ndarray, labels: Sequence[str]) -> list[str]:
    """Batch-calibrated answers from (questions, labels) log-probabilities."""
    if logprobs.ndim != 2 or logprobs.shape[1] != len(labels) or not len(logprobs):
        raise ValueError(
            f"need one row of {len(labels)} label scores per question, got {logprobs.shape}"
        )
    shifted = logprobs - logprobs.max(axis=1, keepdims=True)
    normalized = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_prior = np.log(np.exp(normalized).mean(axis=0))
    return [labels[int(i)] for i in np.argmax(normalized - log_prior, axis=1)]
