"""An OpenAI-compatible server (vLLM) applies a user's adapter when the request names it
as the model; requests without one go to the base model."""

from __future__ import annotations

import json

import httpx

from pgen.models.base import AdapterRef, Message
from pgen.models.http import OpenAITextModel


def test_requests_name_their_adapter_as_the_model() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        seen.append(model)
        return httpx.Response(200, json={"choices": [{"message": {"content": f"from {model}"}}]})

    remote = OpenAITextModel("http://server", "base-model", context_length=512, concurrency=1)
    remote._client = httpx.Client(transport=httpx.MockTransport(answer))
    chats = [[Message("user", "hi")]] * 3
    adapters = [AdapterRef("lora", "lora-ann"), None, AdapterRef("dpo", "dpo-bob")]
    assert remote.generate(chats, adapters=adapters) == [
        "from lora-ann",
        "from base-model",
        "from dpo-bob",
    ]
    assert remote.generate(chats[:1]) == ["from base-model"]
    assert seen == ["lora-ann", "base-model", "dpo-bob", "base-model"]
