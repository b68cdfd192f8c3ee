"""The copy guard: a reply may not repeat a run of ``n`` tokens from its own prompt.

Why: with the author frame the model writes as the user from their own texts, and a small
model given a retrieved post will sometimes hand it back word for word (the attribution
benchmark's ``copied`` column). A ghostwriter that republishes an old post is not writing.
``no_repeat_ngram_size`` only looks at the reply itself; this looks at the prompt.

Each row is guarded by its own prompt only (the padding stripped), so in a batch that
mixes users no user's text shapes another user's reply. Rule, per row and step: once the
reply has ``n - 1`` tokens, the last ``n - 1`` of them are looked up among the prompt's
n-grams, and every token that would complete one of them is forbidden. The reply's first
``n - 1`` tokens are never banned (the run must lie inside the reply), so any n-gram of
the reply's own tokens that is also in the prompt is impossible, no more.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

NGram = tuple[int, ...]


def prompt_ngrams(ids: list[int], n: int) -> dict[NGram, set[int]]:
    """For each run of ``n - 1`` tokens in the prompt, the tokens that follow it there."""
    follow: dict[NGram, set[int]] = defaultdict(set)
    for start in range(len(ids) - n + 1):
        follow[tuple(ids[start : start + n - 1])].add(ids[start + n - 1])
    return dict(follow)


class CopyGuard:
    """A ``transformers`` logits processor (called with the batch's ids and next-token
    scores) built from one batch's encoded prompts, left-padded as ``generate`` takes them."""

    def __init__(self, n: int, input_ids: Any, attention_mask: Any) -> None:
        if n < 2:
            raise ValueError(f"the copy guard needs n >= 2, got {n}")
        self.n = n
        self.prompt_length = int(input_ids.shape[1])
        self.follow = [
            prompt_ngrams([int(t) for t, keep in zip(row, mask, strict=True) if keep], n)
            for row, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True)
        ]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        made = input_ids.shape[1] - self.prompt_length  # reply tokens so far
        if made < self.n - 1:
            return scores
        tails = input_ids[:, -(self.n - 1) :].tolist()
        for row, tail in enumerate(tails):
            banned = self.follow[row].get(tuple(tail))
            if banned:
                scores[row, sorted(banned)] = float("-inf")
        return scores
