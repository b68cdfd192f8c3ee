"""A local upstream OpenAI-compatible server, as vLLM answers: ``GET /v1/models`` and
``POST /v1/chat/completions`` (whole or streamed as server-sent events), decoded by a real
local transformers model. It records each request it receives and each reply it sends,
so tests can assert what pgen sent upstream (prompts, model names) and what came back.

Shared by the text-model tests (pgen's HTTP client alone) and the service tests
(``pgen serve`` in front of it)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pgen.models.base import GenerationSettings, Message
from pgen.models.text import TransformersTextModel

MODEL = "tiny"  # the base model's name, as the server lists it
CONTEXT = 512  # the max_model_len it reports for it


class ChatServer(ThreadingHTTPServer):
    """A real OpenAI-compatible server answering with a local transformers model."""

    model: TransformersTextModel
    requests_seen: list[dict[str, Any]]  # each request's body, plus its "path"
    replies: list[str]  # each reply's text, as the model decoded it
    fail_with: int | None = None
    fail_midstream: bool = False

    @property
    def url(self) -> str:
        """The base URL, ``/v1`` included (as a ``text_model`` spec names it)."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def reset(self) -> None:
        """Forget what was seen and any failure set (a server shared by several tests)."""
        self.requests_seen.clear()
        self.replies.clear()
        self.fail_with = None
        self.fail_midstream = False


class Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # /v1/models, as vLLM answers it
        models = [{"id": MODEL, "object": "model", "max_model_len": CONTEXT}, {"id": "other"}]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"object": "list", "data": models}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests_seen.append({"path": self.path, **body})
        if self.server.fail_with:
            self.send_response(self.server.fail_with)
            self.end_headers()
            self.wfile.write(b'{"error": "model overloaded"}')
            return
        # Any model name is served by the one base model: an adapter's name (vLLM's
        # --lora-modules NAME=PATH) is recorded, its weights are not needed here.
        chat = [Message(m["role"], m["content"]) for m in body["messages"]]
        settings = GenerationSettings(
            max_new_tokens=body["max_tokens"], temperature=body["temperature"]
        )
        if body.get("stream"):
            self.stream(chat, settings)
            return
        text = self.server.model.generate([chat], settings)[0]
        self.server.replies.append(text)
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def stream(self, chat: list[Message], settings: GenerationSettings) -> None:
        """Server-sent events as vLLM sends them: the role, content deltas (here with the
        whitespace a model writes around its reply), a usage chunk, ``[DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

        def event(data: object) -> None:
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        def content(text: str) -> None:
            event({"choices": [{"index": 0, "delta": {"content": text}}]})

        event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        self.wfile.write(b": keep-alive\n\n")
        content("\n ")
        text = self.server.model.generate([chat], settings, sinks=[content])[0]
        self.server.replies.append(text)
        content(" \n")
        if self.server.fail_midstream:
            event({"error": {"message": "the engine died"}})
            return
        event({"choices": [], "usage": {"completion_tokens": 6}})
        self.wfile.write(b"data: [DONE]\n\n")


@contextmanager
def chat_server(model: TransformersTextModel) -> Iterator[ChatServer]:
    """The server on a free loopback port, in a thread, until the block ends."""
    httpd = ChatServer(("127.0.0.1", 0), Handler)
    httpd.model = model
    httpd.requests_seen = []
    httpd.replies = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
