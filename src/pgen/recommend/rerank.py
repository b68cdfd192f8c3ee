"""LLM re-ranking: a text model reorders a base recommender's top candidates.

The prompt lists the user's most recent items and the base model's top-N candidates
(titles, numbered). The answer is parsed into an order of candidates; whatever the model
leaves out keeps the base order after the ones it named, so any answer, even an empty or
malformed one, yields a full ranking. Scores put the re-ranked candidates above every
other item, which keep the base order: the same protocol then scores the result.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from pgen.models.base import GenerationConfig, Message, TextModel
from pgen.recommend.protocol import Scorer, mask_history

SYSTEM = "You are a recommender system. You answer with a ranked list of candidate numbers."


def build_prompt(history: list[str], candidates: list[str]) -> list[Message]:
    watched = "\n".join(f"- {title}" for title in history) or "- (nothing yet)"
    listed = "\n".join(f"{n}. {title}" for n, title in enumerate(candidates, 1))
    user = (
        f"The user interacted with these items, oldest first:\n{watched}\n\n"
        f"Candidates:\n{listed}\n\n"
        "Rank the candidates by how likely the user is to choose each one next. "
        "Answer only with the candidate numbers, best first, separated by commas."
    )
    return [Message("system", SYSTEM), Message("user", user)]


_NUMBER = re.compile(r"\d+")
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")


def _normalize(text: str) -> str:
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split()) + " "


def _title_forms(title: str) -> list[str]:
    """The title as normalized words, with and without a trailing "(1995)"."""
    forms = {_normalize(title), _normalize(_YEAR.sub("", title))}
    return [form for form in forms if len(form.strip()) >= 3]


def parse_ranking(answer: str, candidates: list[str]) -> list[int]:
    """Candidate positions (0-based) in the order the answer gives them, then the rest.

    An answer that quotes candidate titles is read by titles, in the order they appear
    (its numbers are list markers or part of titles such as "Apollo 13"); otherwise by
    candidate numbers ("3, 1, 2", "[3] > [1]", "Answer: 3 1"). Numbers out of range,
    repeats and noise are ignored, and candidates the answer never names follow in the
    base order.
    """
    text = _normalize(answer)
    mentions: list[tuple[int, int]] = []
    for index, title in enumerate(candidates):
        places = [text.find(form) for form in _title_forms(title)]
        places = [p for p in places if p >= 0]
        if places:
            mentions.append((min(places), index))
    named = [index for _, index in sorted(mentions)]
    numbers = (
        []
        if named
        else [int(n) - 1 for n in _NUMBER.findall(text) if 1 <= int(n) <= len(candidates)]
    )
    order: list[int] = []
    for index in [*named, *numbers, *range(len(candidates))]:
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
        self.generation = GenerationConfig(max_new_tokens=max_new_tokens)
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
            order = parse_ranking(answer, [self.titles[i] for i in top[row].tolist()])
            ranked = top[row][torch.tensor(order)]
            bonus = ceiling[row] - floor[row] + 1.0
            result[row, ranked] = bonus + ceiling[row] + torch.arange(len(order), 0, -1.0)
            self.answers.append({"answer": answer, "order": order})
        return result
