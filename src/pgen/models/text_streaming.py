"""Streaming a whole batch out of transformers' ``generate``: each row's new text goes to
that row's sink as soon as it is decoded (transformers' own TextStreamer takes one row)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from transformers.generation.streamers import BaseStreamer

from pgen.models.deltas import ReplyFeed


class BatchStreamer(BaseStreamer):
    """``generate`` calls ``put`` with the prompt ids ([batch, seq]) first, then with each
    step's next tokens ([batch]). Row r keeps its generated ids, decodes them all at each
    step (so a character split over tokens comes out whole) and its feed sends the new
    part. Rows without a feed cost nothing; a row is done at its first end token (after
    it, generate only pads)."""

    def __init__(
        self, tokenizer: Any, feeds: list[ReplyFeed | None], end_ids: Iterable[int]
    ) -> None:
        self.tokenizer = tokenizer
        self.feeds = feeds
        self.end_ids = set(end_ids)
        self.ids: list[list[int]] = [[] for _ in feeds]
        self.done = [feed is None for feed in feeds]
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call is the prompt: not the reply
            self.prompt_seen = True
            return
        for row, tokens in enumerate(value.reshape(len(self.feeds), -1).tolist()):
            if not self.done[row]:
                self._extend(row, tokens)

    def _extend(self, row: int, tokens: list[int]) -> None:
        for token in tokens:
            if token in self.end_ids:
                self.done[row] = True
                break
            self.ids[row].append(token)
        feed = self.feeds[row]
        assert feed is not None
        # As the whole batch is decoded at the end (special tokens skipped), so that the
        # text shown is always a prefix of the reply.
        feed.show(str(self.tokenizer.decode(self.ids[row], skip_special_tokens=True)))

    def end(self) -> None:
        """Nothing held back here: the caller finishes each feed with the final reply."""


def end_token_ids(model: Any) -> list[int]:
    """The ids at which ``generate`` ends a row (its generation config's end tokens)."""
    found = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if found is None:
        return []
    return [int(found)] if isinstance(found, int) else [int(i) for i in found]
