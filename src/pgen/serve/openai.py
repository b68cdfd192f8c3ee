"""An OpenAI-compatible endpoint that personalizes: ``POST /v1/chat/completions`` and
``GET /v1/models``.

The request's ``user`` names the pgen user (within the key's tenant); the strategy comes
from the model name (``pgen/rag``, ``pgen/profile``, ``pgen/lora+rag``; plain ``pgen`` is
``rag``) or the extension fields ``strategy``, ``k``, ``retriever``. The answer carries
pgen's provenance and the output id (for ``POST /users/{user}/feedback``) in ``pgen``.
Streaming sends the answer as server-sent events once the model has produced it (the
batcher decodes whole batches, so tokens are not streamed as they are decoded).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from pgen.context.records import User
from pgen.engine import Generation
from pgen.personalize import Request, strategy_names
from pgen.serve.deps import TenantEngine, TenantName, TheService
from pgen.serve.errors import ApiError
from pgen.serve.memory import remember, turn_document
from pgen.serve.routes import generate
from pgen.serve.schemas import MAX_TEXT, Decoding

router = APIRouter(prefix="/v1", tags=["openai"])
PREFIX = "pgen/"
DEFAULT_STRATEGY = "rag"


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(max_length=64)
    content: str | list[dict[str, Any]] | None = None


class ChatBody(BaseModel):
    # Clients send many fields this server ignores (n, stop, presence_penalty, ...).
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: str = Field(max_length=200)
    messages: list[Message] = Field(min_length=1, max_length=1000)
    user: str | None = Field(None, max_length=256)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=1024)
    max_completion_tokens: int | None = Field(None, ge=1, le=1024)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    strategy: str | None = Field(None, max_length=64)
    k: int = Field(4, ge=1, le=100)
    retriever: str = Field("bm25", max_length=32)


def _text(message: Message) -> str:
    if isinstance(message.content, str):
        return message.content
    parts = message.content or []
    return " ".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


def _strategy(body: ChatBody) -> str:
    if body.strategy:
        return body.strategy
    if body.model == "pgen":
        return DEFAULT_STRATEGY
    if body.model.startswith(PREFIX) and body.model[len(PREFIX) :] in strategy_names("text"):
        return body.model[len(PREFIX) :]
    raise ApiError(
        404,
        "model_not_found",
        f"no model {body.model[:60]!r}; see GET /v1/models (pgen/<strategy>)",
    )


def _instruction(body: ChatBody) -> tuple[str, str]:
    """The instruction (earlier turns included) and the retrieval query (the last turn)."""
    turns = [(m.role, _text(m).strip()) for m in body.messages if m.role != "system"]
    turns = [(role, text) for role, text in turns if text]
    if not turns or turns[-1][0] != "user":
        raise ApiError(400, "invalid_request", "the last message must be the user's, with text")
    last = turns[-1][1][:MAX_TEXT]
    if len(turns) == 1:
        return last, last
    history = "\n".join(f"{role}: {text}" for role, text in turns[:-1])
    return f"Conversation so far:\n{history[-MAX_TEXT:]}\n\nNow: {last}", last


def _pgen_field(result: Generation, remembered: bool) -> dict[str, Any]:
    return json.loads(
        json.dumps(
            {
                "output_id": result.output_id,
                "user": result.user_id,
                "strategy": result.strategy,
                "provenance": result.provenance.as_dict(),
                "remembered": remembered,
            },
            default=str,
        )
    )


@router.get("/models")
def models(tenant: TenantName) -> dict[str, Any]:
    created = int(time.time())
    names = ["pgen", *(PREFIX + name for name in strategy_names("text"))]
    return {
        "object": "list",
        "data": [
            {"id": n, "object": "model", "created": created, "owned_by": "pgen"} for n in names
        ],
    }


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatBody, engine: TenantEngine, tenant: TenantName, service: TheService
) -> Any:
    strategy = _strategy(body)
    if not body.user:
        raise ApiError(400, "invalid_request", "set 'user' to the pgen user to personalize for")
    instruction, query = _instruction(body)
    memory = service.keys.settings(tenant)["memory"]
    if memory and not engine.store.has_user(body.user):
        await run_in_threadpool(engine.ingest, [User(user_id=body.user)])
    decoding = Decoding(
        max_new_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed or 0,
    )
    request = Request(body.user, instruction, strategy, body.k, body.retriever, query)
    result = await generate(service, engine, request, decoding)
    remembered = memory and bool(
        await run_in_threadpool(remember, engine, body.user, [turn_document(body.user, query)])
    )
    completion_id = f"chatcmpl-{result.output_id or uuid.uuid4().hex}"
    created = int(time.time())
    extension = _pgen_field(result, remembered)
    if body.stream:
        return StreamingResponse(
            _stream(completion_id, created, body.model, result.text, extension),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": "stop",
            }
        ],
        "usage": None,
        "pgen": extension,
    }


def _pieces(text: str) -> list[str]:
    """The text in word-sized pieces, whitespace kept, so the pieces join back exactly."""
    pieces: list[str] = []
    current = ""
    for char in text:
        if char.isspace() and current and not current[-1].isspace():
            pieces.append(current)
            current = ""
        current += char
    return [*pieces, current] if current else pieces


async def _stream(
    completion_id: str, created: int, model: str, text: str, extension: dict[str, Any]
) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in _pieces(text):
        yield chunk({"content": piece}, None)
    yield chunk({}, "stop", pgen=extension)
    yield "data: [DONE]\n\n"
