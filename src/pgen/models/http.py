"""An OpenAI-compatible chat-completions client: vLLM, Ollama, llama.cpp server, OpenAI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from pgen.errors import InvalidRequest, UpstreamError
from pgen.models.base import AdapterRef, Chat, GenerationSettings, TextSink
from pgen.models.deltas import ReplyFeed

# Without the server's tokenizer, budgets count characters. English averages about four
# per token; three leaves room for code, numbers and other languages.
CHARS_PER_TOKEN = 3
DEFAULT_CONTEXT = 4096  # when the server does not say


class TextModelError(UpstreamError):
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
        context_length: int | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
    ) -> None:
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model = model
        self.name = f"{model}@{self.base_url}"
        self._context_length = context_length
        self.concurrency = concurrency
        key = api_key or os.environ.get("OPENAI_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)

    @property
    def context_length(self) -> int:
        """As given, else what the server reports for this model on first use: vLLM's
        ``max_model_len``, llama.cpp's ``meta.n_ctx_train``; else ``DEFAULT_CONTEXT``."""
        if self._context_length is None:
            self._context_length = self._reported_context() or DEFAULT_CONTEXT
        return self._context_length

    def _reported_context(self) -> int | None:
        try:
            response = self._client.get(f"{self.base_url}/models")
            entries = response.json().get("data", []) if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError, AttributeError):
            return None  # generation will say what is wrong with the server
        for entry in entries:
            if isinstance(entry, dict) and entry.get("id") == self.model:
                meta = entry.get("meta") or {}
                found = entry.get("max_model_len") or meta.get("n_ctx_train")
                return int(found) if found else None
        return None

    def count_tokens(self, text: str) -> int:
        return -(-len(text) // CHARS_PER_TOKEN)

    def truncate(self, text: str, max_tokens: int) -> str:
        return text[: max(max_tokens, 0) * CHARS_PER_TOKEN]

    def _complete(
        self,
        chat: Chat,
        config: GenerationSettings,
        adapter: AdapterRef | None,
        sink: TextSink | None = None,
    ) -> str:
        messages = [{"role": m.role, "content": m.content} for m in chat]
        if sink is not None:
            return self._streamed(messages, config, adapter, ReplyFeed(sink))
        return self.complete_messages(messages, config, adapter)

    def _body(
        self, messages: list[dict[str, Any]], config: GenerationSettings, adapter: AdapterRef | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            # vLLM serves each LoRA adapter as a model of its own name (--lora-modules
            # NAME=PATH): a request for a user's adapter names it instead of the base.
            "model": adapter.name if adapter is not None else self.model,
            "messages": messages,
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": config.seed,
        }
        if config.repetition_penalty != 1.0:
            body["repetition_penalty"] = config.repetition_penalty  # vLLM's extension
        if config.no_copy_ngram_size:
            # No OpenAI-compatible server takes the prompt's n-grams as a ban list: refuse
            # rather than answer unguarded.
            raise InvalidRequest(
                "no_copy_ngram_size (the copy guard) needs a local text model; "
                f"{self.base_url} cannot apply it"
            )
        return body

    def complete_messages(
        self,
        messages: list[dict[str, Any]],
        config: GenerationSettings,
        adapter: AdapterRef | None = None,
    ) -> str:
        """One reply to messages in the API's own form, where content may be a list of
        parts (text and ``image_url``: how vLLM and Ollama take images)."""
        url = f"{self.base_url}/chat/completions"
        try:
            response = self._client.post(url, json=self._body(messages, config, adapter))
        except httpx.HTTPError as error:
            raise TextModelError(f"text model server at {url} unreachable: {error}") from None
        _check_status(response, url)
        try:
            return str(response.json()["choices"][0]["message"]["content"]).strip()
        except (ValueError, KeyError, IndexError, TypeError):
            raise TextModelError(
                f"text model server at {url} sent no choices[0].message.content: "
                f"{response.text[:200]}"
            ) from None

    def _streamed(
        self,
        messages: list[dict[str, Any]],
        config: GenerationSettings,
        adapter: AdapterRef | None,
        feed: ReplyFeed,
    ) -> str:
        """The reply asked for with ``stream: true`` (server-sent events, as vLLM, Ollama
        and llama.cpp send them), each piece handed on to ``feed`` as it arrives."""
        url = f"{self.base_url}/chat/completions"
        body = {**self._body(messages, config, adapter), "stream": True}
        text = ""
        try:
            with self._client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    response.read()
                _check_status(response, url)
                for delta in _sse_deltas(response.iter_lines(), url):
                    text += delta
                    feed.show(text)
        except httpx.HTTPError as error:
            raise TextModelError(f"text model server at {url} failed: {error}") from None
        reply = text.strip()
        feed.finish(reply)
        return reply

    def generate(
        self,
        chats: list[Chat],
        config: GenerationSettings | None = None,
        adapters: Sequence[AdapterRef | None] | None = None,
        *,
        sinks: Sequence[TextSink | None] | None = None,
    ) -> list[str]:
        """One reply per chat; a chat with a sink (``sinks[i]``) is streamed from the
        server and its text handed on as it comes."""
        settings = config or GenerationSettings()
        per_chat = list(adapters) if adapters is not None else [None] * len(chats)
        per_sink = list(sinks) if sinks is not None else [None] * len(chats)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(
                pool.map(
                    lambda job: self._complete(job[0], settings, job[1], job[2]),
                    zip(chats, per_chat, per_sink, strict=True),
                )
            )


def _check_status(response: httpx.Response, url: str) -> None:
    if response.status_code != 200:
        raise TextModelError(
            f"text model server at {url} answered {response.status_code}: {response.text[:200]}"
        )


def _sse_deltas(lines: Iterator[str], url: str) -> Iterator[str]:
    """The content deltas of a streamed chat completion: ``data: {chunk}`` lines up to
    ``data: [DONE]``; other lines (comments, blank separators) carry nothing."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise TextModelError(f"text model server at {url} sent {data[:200]!r}") from None
        if not isinstance(chunk, dict) or chunk.get("error"):
            raise TextModelError(f"text model server at {url} sent {data[:200]!r}")
        try:
            content = (chunk.get("choices") or [{}])[0].get("delta", {}).get("content")
        except (AttributeError, IndexError, TypeError):
            raise TextModelError(f"text model server at {url} sent {data[:200]!r}") from None
        if content:
            yield str(content)
