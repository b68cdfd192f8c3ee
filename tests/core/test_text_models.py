from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgen.config import Config
from pgen.models.base import GenerationSettings, Message, TextModel
from pgen.models.http import DEFAULT_CONTEXT, OpenAITextModel, TextModelError
from pgen.models.text import TransformersTextModel, load_text_model
from tests.upstream_server import ChatServer, chat_server

CHATS = [
    [Message("user", "the battery lasts long")],
    [
        Message("system", "you are a helpful assistant"),
        Message("user", "rate it 1 to 5, a much longer question here"),
    ],
    [Message("user", "great sound")],
]


def test_tiny_model_loads_from_a_folder_through_the_loader(tiny_llama: Path) -> None:
    model = load_text_model(str(tiny_llama), Config())
    assert isinstance(model, TextModel)
    assert model.context_length == 512


def test_batched_greedy_generation_equals_one_by_one(tiny_model: TransformersTextModel) -> None:
    settings = GenerationSettings(max_new_tokens=8)
    batched = tiny_model.generate(CHATS, settings)
    alone = [tiny_model.generate([chat], settings)[0] for chat in CHATS]
    assert batched == alone
    assert tiny_model.generate(CHATS, settings) == batched  # greedy is deterministic


def test_chat_template_is_applied(tiny_model: TransformersTextModel) -> None:
    rendered = tiny_model.render(CHATS[1])
    assert rendered == (
        "<|system|>you are a helpful assistant<|end|>"
        "<|user|>rate it 1 to 5, a much longer question here<|end|><|assistant|>"
    )


def test_truncate_fits_the_token_budget(tiny_model: TransformersTextModel) -> None:
    text = "the battery lasts long and the screen is bright " * 20
    total = tiny_model.count_tokens(text)
    cut = tiny_model.truncate(text, 10)
    assert tiny_model.count_tokens(cut) <= 10 < total
    assert text.startswith(cut.strip()[:20])
    assert tiny_model.truncate("short", 10) == "short"


def test_unknown_spec_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected openai:MODEL@BASE_URL"):
        load_text_model("openai:no-url", Config())
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        load_text_model(str(tmp_path / "missing.gguf"), Config())


@pytest.mark.slow
def test_default_smollm2_converts_once_then_loads_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGEN_MODEL_CACHE", str(tmp_path / "machine"))
    config = Config(home=tmp_path / "home-a")
    model = load_text_model(None, config)
    assert model.name == "SmolLM2-135M-Instruct"
    converted = list((tmp_path / "machine" / "models").iterdir())
    assert len(converted) == 1 and (converted[0] / "model.safetensors").is_file()
    reply = model.generate(
        [[Message("user", "What is the capital of France?")]], GenerationSettings(max_new_tokens=12)
    )
    assert "Paris" in reply[0]
    # Another home on the same machine loads the same converted copy, not the GGUF.
    again = load_text_model(None, Config(home=tmp_path / "home-b"))
    assert list((tmp_path / "machine" / "models").iterdir()) == converted
    assert not (tmp_path / "home-b").exists()
    assert (
        again.generate(
            [[Message("user", "What is the capital of France?")]],
            GenerationSettings(max_new_tokens=12),
        )
        == reply
    )


@pytest.fixture
def server(tiny_model: TransformersTextModel) -> Iterator[ChatServer]:
    with chat_server(tiny_model) as running:
        yield running


def test_http_backend_gets_the_same_answers_as_the_local_model(
    server: ChatServer, tiny_model: TransformersTextModel
) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    remote = load_text_model(f"openai:tiny@{url}", Config())
    settings = GenerationSettings(max_new_tokens=6)
    assert remote.generate(CHATS, settings) == tiny_model.generate(CHATS, settings)
    first = server.requests_seen[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["model"] == "tiny" and first["temperature"] == 0.0


def test_http_backend_streams_each_reply_as_the_server_sends_it(
    server: ChatServer, tiny_model: TransformersTextModel
) -> None:
    remote = OpenAITextModel(f"http://127.0.0.1:{server.server_address[1]}", "tiny")
    settings = GenerationSettings(max_new_tokens=6)
    deltas: list[list[str]] = [[], [], []]
    sinks = [deltas[0].append, None, deltas[2].append]
    replies = remote.generate(CHATS, settings, sinks=sinks)
    assert replies == tiny_model.generate(CHATS, settings)
    for row in (0, 2):  # the whitespace around the reply is never sent
        assert "".join(deltas[row]) == replies[row] and len(deltas[row]) > 1
    assert deltas[1] == [] and sum(bool(r.get("stream")) for r in server.requests_seen) == 2
    server.fail_midstream = True
    with pytest.raises(TextModelError, match="the engine died"):
        remote.generate(CHATS[:1], settings, sinks=[[].append])


def test_http_backend_reads_the_context_length_the_server_reports(server: ChatServer) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    assert OpenAITextModel(url, "tiny").context_length == 512
    assert OpenAITextModel(url, "other").context_length == DEFAULT_CONTEXT  # not reported
    assert OpenAITextModel(url, "tiny", context_length=2048).context_length == 2048
    assert OpenAITextModel("http://127.0.0.1:9", "x", timeout=2).context_length == DEFAULT_CONTEXT


def test_http_errors_are_readable(server: ChatServer) -> None:
    server.fail_with = 503
    remote = OpenAITextModel(f"http://127.0.0.1:{server.server_address[1]}", "tiny")
    with pytest.raises(TextModelError, match=r"answered 503: .*model overloaded"):
        remote.generate(CHATS[:1])
    closed = OpenAITextModel("http://127.0.0.1:9", "tiny", timeout=2)
    with pytest.raises(TextModelError, match="unreachable"):
        closed.generate(CHATS[:1])


def test_choice_logprobs_equal_a_forward_pass_per_sequence(
    tiny_model: TransformersTextModel,
) -> None:
    import torch

    choices = ["1", "sci-fi", "based on a book"]  # different token lengths: padded
    scores = tiny_model.choice_logprobs(CHATS, choices)
    assert scores.shape == (3, 3) and (scores < 0).all()
    tokenize = tiny_model.tokenizer
    for row, chat in enumerate(CHATS):
        prompt = tokenize(tiny_model.render(chat), add_special_tokens=False)["input_ids"]
        for col, choice in enumerate(choices):
            answer = tokenize(choice, add_special_tokens=False)["input_ids"]
            answer.append(tokenize.eos_token_id)  # the reply ends there
            with torch.no_grad():
                logits = tiny_model.model(input_ids=torch.tensor([prompt + answer])).logits[0]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            expected = sum(
                float(logprobs[len(prompt) - 1 + t, token]) for t, token in enumerate(answer)
            )
            assert scores[row, col] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="at least one choice"):
        tiny_model.choice_logprobs(CHATS, [])
