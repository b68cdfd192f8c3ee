"""The copy guard (``no_copy_ngram_size``): a reply never repeats a run of n tokens of its
own prompt; each row of a batch is guarded by its own prompt only; off changes nothing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import torch

from pgen.config import Config
from pgen.errors import InvalidRequest
from pgen.models.base import Chat, GenerationSettings, Message
from pgen.models.copy_guard import CopyGuard, prompt_ngrams
from pgen.models.deltas import reply_text
from pgen.models.http import OpenAITextModel
from pgen.models.text import TransformersTextModel, load_text_model

# A user's old post, and a request to write like them: what a ghostwriter is handed.
NOTE = "from the user's own documents: it may hand back their old text rather than write a new one"
POST = "the battery lasts long and the screen is bright, the sound is great and the case"
CHATS = [
    [Message("system", f"Their post: {POST}"), Message("user", f"{POST} {POST}")],
    [Message("user", "rate it 1 to 5, the screen is bright and the sound")],
]


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path) -> TransformersTextModel:
    model = load_text_model(str(tiny_llama), Config())
    assert isinstance(model, TransformersTextModel)
    return model


def ngrams(ids: list[int], n: int) -> set[tuple[int, ...]]:
    return {tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)}


def test_a_row_is_banned_only_what_its_own_prompt_would_complete() -> None:
    pad = 0
    # Row 0's prompt holds 5 6 7; row 1's (left-padded) holds 5 6 9. Both replies end 5 6.
    prompts = torch.tensor([[3, 5, 6, 7, 4], [pad, 5, 6, 9, 4]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    guard = CopyGuard(3, prompts, mask)
    so_far = torch.cat([prompts, torch.tensor([[5, 6], [5, 6]])], dim=1)
    scores = guard(so_far, torch.zeros(2, 12))
    assert torch.isinf(scores[0]).nonzero().flatten().tolist() == [7]
    assert torch.isinf(scores[1]).nonzero().flatten().tolist() == [9]  # not 7: row 0's
    # The padding is not part of a prompt: (pad, 5) -> 6 is no n-gram of row 1.
    assert (pad, 5) not in prompt_ngrams([5, 6, 9, 4], 3)
    # Until the reply has n - 1 tokens of its own, nothing is banned.
    early = guard(torch.cat([prompts, torch.tensor([[6], [6]])], dim=1), torch.zeros(2, 12))
    assert not torch.isinf(early).any()


def _reply_ids(tiny: TransformersTextModel, chats: list[Chat], guard: int) -> list[list[int]]:
    """Greedy replies as token ids, straight from ``transformers`` (the guard built from
    the same left-padded batch as pgen builds it)."""
    encoded = tiny.tokenizer(
        [tiny.render(chat) for chat in chats],
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
    )
    options: dict[str, Any] = {"max_new_tokens": 40, "do_sample": False, "pad_token_id": 0}
    if guard:
        options["logits_processor"] = [
            CopyGuard(guard, encoded["input_ids"], encoded["attention_mask"])
        ]
    out = tiny.model.generate(**encoded, **options)
    return [row[encoded["input_ids"].shape[1] :] for row in out.tolist()]


def _prompt_ids(tiny: TransformersTextModel, chat: Chat) -> list[int]:
    return list(tiny.tokenizer(tiny.render(chat), add_special_tokens=False)["input_ids"])


def test_guarded_greedy_replies_hold_no_run_of_the_prompt(tiny: TransformersTextModel) -> None:
    n = 4
    # A random model copies what it already loops on: hand it back its own reply, as a
    # user's old text, until its next reply repeats a run of 4 tokens from the prompt.
    text, copying = "the battery lasts long and the screen is bright", None
    for _ in range(6):
        chat = [Message("user", text)]
        (reply,) = _reply_ids(tiny, [chat], guard=0)
        if ngrams(reply, n) & ngrams(_prompt_ids(tiny, chat), n):
            copying = chat
            break
        text = "the battery lasts long " + tiny.tokenizer.decode(reply, skip_special_tokens=True)
    assert copying is not None, "the tiny model never copied: the test cannot show the guard"
    # Guarded, in a batch with another user's chat: neither reply repeats its own prompt.
    chats = [copying, CHATS[1]]
    guarded = _reply_ids(tiny, chats, guard=n)
    for chat, reply in zip(chats, guarded, strict=True):
        assert not ngrams(reply, n) & ngrams(_prompt_ids(tiny, chat), n)
    # pgen's own path applies the same guard: the same replies, unlike the unguarded ones.
    settings = GenerationSettings(max_new_tokens=40, no_copy_ngram_size=n)
    texts = tiny.generate(chats, settings)
    expected = [reply_text(tiny.tokenizer.decode(r, skip_special_tokens=True)) for r in guarded]
    assert texts == expected
    assert texts[0] != tiny.generate(chats, GenerationSettings(max_new_tokens=40))[0]


def test_bad_sizes_and_a_server_model_are_refused() -> None:
    with pytest.raises(ValueError, match="no_copy_ngram_size must be 0"):
        GenerationSettings(no_copy_ngram_size=1)
    server = OpenAITextModel("m", "http://127.0.0.1:9/v1")
    with pytest.raises(InvalidRequest, match="needs a local text model"):
        server.generate([CHATS[1]], GenerationSettings(no_copy_ngram_size=4))


def test_a_reply_that_hands_back_the_users_post_says_so(tmp_path: Path) -> None:
    """Whatever decoding did, the output's record says how much of it repeats the user's
    documents, and notes it when that is most of it."""
    from pgen.components import Provenance, TextPlan, TextRequest
    from pgen.context.records import Document
    from pgen.context.sqlite import SQLiteStore
    from pgen.models.executors import Executed
    from pgen.run.builtin_modalities import _text_record
    from pgen.run.modalities import Workbench

    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        store.add([Document(user_id="ann", doc_id="d1", text=POST)])
        bench = cast(Workbench, SimpleNamespace(store=store))
        request = TextRequest("ann", "Write a post about my week", "rag")
        for reply, share in ((POST, 1.0), ("a new text about hiking in the hills with friends", 0)):
            plan = TextPlan([], Provenance(documents=["d1"]))
            record = _text_record(bench, request, plan, Executed(reply, "tiny"))
            assert record["details"]["copied"] == share
            noted = [n for n in record["notes"] if "repeats" in n]
            assert noted == (["the reply repeats 100% of its 5-word runs " + NOTE] if share else [])
        # No documents used (none, or another user's request): nothing is read or noted.
        plan = TextPlan([], Provenance())
        assert "copied" not in _text_record(bench, request, plan, Executed(POST, "tiny"))["details"]
