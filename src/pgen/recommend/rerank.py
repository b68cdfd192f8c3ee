"""LLM re-ranking: a text model reorders a base recommender's top candidates.

The prompt lists the user's most recent items and the base model's top-N candidates
(titles, numbered). The answer is parsed into an order of candidates; whatever the model
leaves out keeps the base order after the ones it named, so any answer, even an empty or
malformed one, yields a full ranking. Scores put the re-ranked candidates above every
other item, which keep the base order: the same protocol then scores the result.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pgen.models.base import GenerationSettings, Message, TextModel
from pgen.recommend.protocol import Scorer, mask_history

SYSTEM = "You are a recommender system. You answer with a ranked list of candidate numbers."


INSTRUCTION = (
    "Rank the candidates by how likely the user is to choose each one next. "
    "Answer only with the candidate numbers, best first, separated by commas."
)


def build_prompt(history: list[str], candidates: list[str]) -> list[Message]:
    watched = "\n".join(f"- {title}" for title in history) or "- (nothing yet)"
    listed = "\n".join(f"{n}. {title}" for n, title in enumerate(candidates, 1))
    user = (
        f"The user interacted with these items, oldest first:\n{watched}\n\n"
        f"Candidates:\n{listed}\n\n{INSTRUCTION}"
    )
    return [Message("system", SYSTEM), Message("user", user)]


_NUMBER = re.compile(r"\d+")
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_SEPARATORS = frozenset("\n,;>|")  # between list entries; "." is not ("4.5", "1. Heat")


def _normalize(text: str) -> str:
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split()) + " "


def _segmented(text: str) -> tuple[str, list[int]]:
    """``_normalize(text)``, and for each of its characters the number of the list entry
    (text between separators) it came from."""
    chars, entries, entry = [" "], [0], 0
    for char in text.lower():
        if char in _SEPARATORS:
            entry += 1
        if char.isascii() and char.isalnum():
            chars.append(char)
            entries.append(entry)
        elif chars[-1] != " ":
            chars.append(" ")
            entries.append(entry)
    if chars[-1] != " ":
        chars.append(" ")
        entries.append(entry)
    return "".join(chars), entries


def _title_forms(title: str) -> list[str]:
    """The title as normalized words, with and without a trailing "(1995)"."""
    forms = {_normalize(title), _normalize(_YEAR.sub("", title))}
    return [form for form in forms if len(form.strip()) >= 3]


def parse_ranking(answer: str, candidates: list[str], history: Sequence[str] = ()) -> list[int]:
    """Candidate positions (0-based) in the order the answer gives them, then the rest.

    The answer is read entry by entry (entries end at a newline, comma, ";", ">" or "|"):
    an entry that quotes a candidate title stands for that candidate (its numbers are list
    markers or part of titles such as "Apollo 13"); an entry without a title stands for
    the candidate numbers in it ("3, 1, 2", "[3] > [1]", "Answer: 3 1"), so an answer may
    mix both. Titles are matched longest first and each match hides its words from shorter
    ones: "Heat" is not found inside the candidate "Heat Wave", nor inside the
    ``history`` title "Heat Wave" when the model echoes the prompt; an echo of the whole
    prompt is skipped up to its closing instruction. Numbers out of range, repeats and
    noise are ignored, and candidates the answer never names follow in the base order.
    """
    echoed = answer.lower().rfind(INSTRUCTION.lower())
    if echoed >= 0:
        answer = answer[echoed + len(INSTRUCTION) :]
    text, entries = _segmented(answer)
    candidate_forms = {form for title in candidates for form in _title_forms(title)}
    forms: list[tuple[str, int | None]] = [
        (form, index) for index, t in enumerate(candidates) for form in _title_forms(t)
    ]
    forms += [
        (form, None)
        for title in history
        for form in _title_forms(title)
        if form not in candidate_forms  # a shared title reads as the candidate
    ]
    mentions: list[tuple[int, int]] = []
    for form, index in sorted(forms, key=lambda pair: -len(pair[0])):
        place = text.find(form)
        while place >= 0:
            if index is not None:
                mentions.append((place, index))
            # Keep the bounding spaces, so neighbouring titles still match.
            text = text[: place + 1] + "#" * (len(form) - 2) + text[place + len(form) - 1 :]
            place = text.find(form)
    titled = {entries[place + 1] for place, _ in mentions}
    for match in _NUMBER.finditer(text):
        number = int(match.group())
        if entries[match.start()] not in titled and 1 <= number <= len(candidates):
            mentions.append((match.start(), number - 1))
    order: list[int] = []
    for index in [*(index for _, index in sorted(mentions)), *range(len(candidates))]:
        if index not in order:
            order.append(index)
    return order


class LLMReranker:
    """A ``Scorer``: base recommender scores, with the top ``candidates`` re-ordered."""

    def __init__(
        self,
        base: Scorer,
        text_model: TextModel,
        titles: list[str],
        candidates: int = 20,
        history: int = 10,
        max_new_tokens: int = 96,
    ) -> None:
        self.base = base
        self.text_model = text_model
        self.titles = titles
        self.candidates = candidates
        self.history = history
        self.generation = GenerationSettings(max_new_tokens=max_new_tokens)
        self.answers: list[dict[str, Any]] = []  # prompts' outcomes, for the report

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        scores = self.base.score(users, histories).detach().float().clone()
        keep = np.full(len(users), -1)
        mask_history(scores, histories, keep)
        top = scores.topk(min(self.candidates, scores.shape[1]), dim=1).indices
        chats = []
        for row, history in enumerate(histories):
            recent = [self.titles[i] for i in history[-self.history :]]
            chats.append(build_prompt(recent, [self.titles[i] for i in top[row].tolist()]))
        answers = self.text_model.generate(chats, self.generation)
        # Re-ranked candidates go above everything else; the rest keep base scores below.
        floor = scores.masked_fill(torch.isinf(scores), 0).min(dim=1).values
        ceiling = scores.masked_fill(torch.isinf(scores), 0).max(dim=1).values
        result = scores.clone()
        for row, answer in enumerate(answers):
            candidates = [self.titles[i] for i in top[row].tolist()]
            recent = [self.titles[i] for i in histories[row][-self.history :]]
            order = parse_ranking(answer, candidates, recent)
            ranked = top[row][torch.tensor(order)]
            bonus = ceiling[row] - floor[row] + 1.0
            result[row, ranked] = bonus + ceiling[row] + torch.arange(len(order), 0, -1.0)
            self.answers.append({"answer": answer, "order": order})
        return result
