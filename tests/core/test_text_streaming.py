"""A batch streams row by row: each row's sink gets its own reply as the model decodes it,
in deltas that join up to exactly the reply returned, whatever the batch order, the
rows' adapters or the decoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgen.models.base import GenerationSettings, Message, streams
from pgen.models.deltas import ReplyFeed, reply_text
from pgen.models.text import TransformersTextModel
from tests.training.test_gathered_lora import saved_lora

CHATS = [
    [Message("user", "great sound")],
    [
        Message("system", "you are a helpful assistant"),
        Message("user", "rate it 1 to 5, a much longer question here about the battery"),
    ],
    [Message("user", "the battery lasts long and the screen is bright")],
]


def collect(n: int) -> tuple[list[list[str]], list]:
    deltas: list[list[str]] = [[] for _ in range(n)]
    return deltas, [row.append for row in deltas]


@pytest.fixture(scope="module", params=["gathered", "peft"])
def two_per_batch(tiny_llama: Path, request: pytest.FixtureRequest) -> TransformersTextModel:
    # Three chats in batches of two: the longest first, so rows are reordered and split.
    return TransformersTextModel(
        str(tiny_llama), name="tiny-llama", batch_size=2, adapter_mixing=request.param
    )


@pytest.mark.parametrize(
    "settings",
    [GenerationSettings(max_new_tokens=24), GenerationSettings(max_new_tokens=24, temperature=1.0)],
    ids=["greedy", "sampled"],
)
def test_each_row_streams_exactly_its_reply_with_an_adapter_in_the_batch(
    two_per_batch: TransformersTextModel,
    tiny_llama: Path,
    tmp_path: Path,
    settings: GenerationSettings,
) -> None:
    adapters = [None, saved_lora(tiny_llama, tmp_path / "lora", 1), None]
    deltas, sinks = collect(len(CHATS))
    streamed = two_per_batch.generate(CHATS, settings, adapters, sinks=sinks)
    assert streamed == two_per_batch.generate(CHATS, settings, adapters)  # the same replies
    for row, reply in zip(deltas, streamed, strict=True):
        assert "".join(row) == reply and all(delta for delta in row)
    assert min(len(row) for row in deltas) > 1  # pieces as decoded, not whole replies
    assert streams(two_per_batch)


def test_rows_without_a_sink_and_a_failing_sink_leave_the_others_alone(
    two_per_batch: TransformersTextModel,
) -> None:
    settings = GenerationSettings(max_new_tokens=16)

    def gone(delta: str) -> None:
        raise RuntimeError("the client went away")

    kept: list[str] = []
    replies = two_per_batch.generate(CHATS, settings, sinks=[gone, None, kept.append])
    assert replies == two_per_batch.generate(CHATS, settings)
    assert "".join(kept) == replies[2]


def test_a_character_split_over_tokens_is_sent_whole(tiny_model: TransformersTextModel) -> None:
    text = "  周末我们去公园散步，然后喝咖啡☕。 "  # spaces at both ends: never sent
    tokenizer = tiny_model.tokenizer
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    prefixes = [str(tokenizer.decode(ids[:n])) for n in range(1, len(ids) + 1)]
    assert any(p.endswith("\ufffd") for p in prefixes)  # the case is real
    sent: list[str] = []
    feed = ReplyFeed(sent.append)
    for prefix in prefixes:
        feed.show(prefix)
    feed.finish(reply_text(prefixes[-1]))
    assert "".join(sent) == text.strip()
    assert not any("\ufffd" in delta or not delta for delta in sent)
    assert len(sent) > 5
