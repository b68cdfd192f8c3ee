"""Decoded text never ends in a broken character: a byte-level tokenizer splits a Chinese
character or an emoji into several tokens, and a cut between them decodes to U+FFFD."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from pgen.models.base import GenerationSettings, Message
from pgen.models.text import TransformersTextModel, whole_characters

TEXT = "周末我们去公园散步，然后喝咖啡☕。"
BROKEN = "\ufffd"


def test_truncate_never_cuts_inside_a_character(tiny_model: TransformersTextModel) -> None:
    ids = tiny_model.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    raw_cuts = [str(tiny_model.tokenizer.decode(ids[:n])) for n in range(1, len(ids))]
    assert sum(cut.endswith(BROKEN) for cut in raw_cuts) > len(ids) // 3  # the case is real
    for n in range(1, len(ids)):
        cut = tiny_model.truncate(TEXT, n)
        assert BROKEN not in cut, n
        assert TEXT.startswith(cut), n
        assert tiny_model.count_tokens(cut) <= n
    assert tiny_model.truncate(TEXT, len(ids)) == TEXT


def test_a_reply_cut_by_max_new_tokens_ends_in_a_whole_character(
    tiny_model: TransformersTextModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The random tiny model writes noise; script its new tokens instead: "好的，周末" and
    # then only the first byte-token of 见, as a cut by max_new_tokens leaves it.
    tokenizer = tiny_model.tokenizer
    whole = tokenizer("好的，周末", add_special_tokens=False)["input_ids"]
    partial = tokenizer("见", add_special_tokens=False)["input_ids"]
    assert len(partial) > 1  # 见 is several byte tokens in this vocabulary
    scripted = torch.tensor([whole + partial[:1]])
    assert str(tokenizer.decode(scripted[0])).endswith(BROKEN)
    real_generate = tiny_model.model.generate

    def generate(**kwargs: Any) -> torch.Tensor:
        prompt = kwargs["input_ids"]
        real_generate(**kwargs)  # the real call, for its arguments to be checked
        return torch.cat([prompt, scripted.expand(len(prompt), -1)], dim=1)

    monkeypatch.setattr(tiny_model.model, "generate", generate)
    chats = [[Message("user", "周末去哪里？")], [Message("user", "你好")]]
    config = GenerationSettings(max_new_tokens=len(scripted[0]))
    assert tiny_model.generate(chats, config) == ["好的，周末", "好的，周末"]


def test_whole_characters_keeps_text_that_is_not_cut() -> None:
    assert whole_characters("周末" + BROKEN + BROKEN) == "周末"
    assert whole_characters("a" + BROKEN + "b") == "a" + BROKEN + "b"  # not a cut: kept
    assert whole_characters("") == ""
