"""An OpenAI-compatible chat-completions client: vLLM, Ollama, llama.cpp server, OpenAI."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from pgen.models.base import Chat, GenerationConfig

CHARS_PER_TOKEN = 4  # without the server's tokenizer, budgets use this conservative estimate


class TextModelError(RuntimeError):
    pass


class OpenAITextModel:
    """Sends each chat to ``POST {base_url}/chat/completions``; a batch goes out as
    concurrent requests, which servers like vLLM batch on their side."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        context_length: int = 4096,
        concurrency: int = 8,
        timeout: float = 120.0,
    ) -> None:
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model = model
        self.name = f"{model}@{self.base_url}"
        self.context_length = context_length
        self.concurrency = concurrency
        key = api_key or os.environ.get("OPENAI_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)

    def count_tokens(self, text: str) -> int:
        return -(-len(text) // CHARS_PER_TOKEN)

    def truncate(self, text: str, max_tokens: int) -> str:
        return text[: max(max_tokens, 0) * CHARS_PER_TOKEN]

    def _complete(self, chat: Chat, config: GenerationConfig) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in chat],
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": config.seed,
        }
        if config.repetition_penalty != 1.0:
            body["repetition_penalty"] = config.repetition_penalty  # vLLM's extension
        url = f"{self.base_url}/chat/completions"
        try:
            response = self._client.post(url, json=body)
        except httpx.HTTPError as error:
            raise TextModelError(f"text model server at {url} unreachable: {error}") from None
        if response.status_code != 200:
            raise TextModelError(
                f"text model server at {url} answered {response.status_code}: {response.text[:200]}"
            )
        try:
            return str(response.json()["choices"][0]["message"]["content"]).strip()
        except (ValueError, KeyError, IndexError, TypeError):
            raise TextModelError(
                f"text model server at {url} sent no choices[0].message.content: "
                f"{response.text[:200]}"
            ) from None

    def generate(self, chats: list[Chat], config: GenerationConfig | None = None) -> list[str]:
        settings = config or GenerationConfig()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda chat: self._complete(chat, settings), chats))
