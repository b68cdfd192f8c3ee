"""An OpenAI-compatible endpoint that personalizes: ``POST /v1/chat/completions`` and
``GET /v1/models``.

Earlier turns of the conversation reach the model as chat messages through its chat
template (the newest that fit the prompt budget; any dropped are said in the provenance).
The request's ``user`` names the pgen user (within the key's tenant); the strategy comes
from the model name (``pgen/rag``, ``pgen/profile``, ``pgen/lora+rag``; plain ``pgen`` is
``rag``) or the extension fields ``strategy``, ``k``, ``retriever`` (default ``memory``
for a tenant with memory on, else ``bm25``). The answer carries
pgen's provenance and the output id (for ``POST /users/{user}/feedback``) in ``pgen``.

With ``stream: true`` the answer goes out as server-sent events while the model decodes
it, the request still sharing its model batch with others (the batcher hands each one's
new text to its stream); the last chunk carries ``pgen``. A request that cannot start
(unknown user, model or strategy) is refused with a JSON error before any event; an error
once streaming has begun is sent as a last ``{"error": ...}`` event.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from pgen.components import TextRequest
from pgen.context.base import UserNotFoundError
from pgen.context.records import User
from pgen.engine import Engine
from pgen.models.base import Message as ChatMessage
from pgen.models.base import TextSink
from pgen.personalize import strategy_names
from pgen.results import Generation
from pgen.run.conversation import turn_document
from pgen.serve.deps import TenantEngine, TenantName, TheService
from pgen.serve.errors import ApiError, error_body, error_json, log
from pgen.serve.routes import generate
from pgen.serve.schemas import MAX_TEXT, Decoding

router = APIRouter(prefix="/v1", tags=["openai"])
_answering: set[asyncio.Task[Any]] = set()  # streamed answers still running
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
    # None: "memory" (the conversation's turns) for a tenant with memory on, else "bm25".
    retriever: str | None = Field(None, max_length=32)


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


def _turns(body: ChatBody) -> tuple[str, tuple[ChatMessage, ...]]:
    """The last user turn (the instruction, and the retrieval query) and the earlier user
    and assistant turns, which go to the model as chat messages (the prompt budget keeps
    the newest that fit, saying so in the provenance)."""
    turns = [(m.role, _text(m).strip()) for m in body.messages if m.role != "system"]
    turns = [(role, text) for role, text in turns if text]
    if not turns or turns[-1][0] != "user":
        raise ApiError(400, "invalid_request", "the last message must be the user's, with text")
    earlier = [(role, text) for role, text in turns[:-1] if role in ("user", "assistant")]
    history = tuple(
        ChatMessage("user" if role == "user" else "assistant", text[:MAX_TEXT])
        for role, text in earlier
    )
    return turns[-1][1][:MAX_TEXT], history


UNKNOWN_USER = (
    "no such user for this API key: add the user's context first (POST /records), "
    "or turn the tenant's memory on"
)


def _unknown_user() -> ApiError:
    """One answer, byte for byte, for a user that does not exist and for another
    tenant's user (and the name is not echoed: it may be someone else's)."""
    return ApiError(404, "user_not_found", UNKNOWN_USER)


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
    instruction, history = _turns(body)
    keys = service.keys  # in Postgres a round trip: off the event loop
    remote = keys.remote
    settings = await run_in_threadpool(keys.settings, tenant) if remote else keys.settings(tenant)
    memory = settings["memory"]
    if memory and not engine.has_user(body.user):
        await run_in_threadpool(engine.ingest, [User(user_id=body.user)])
    decoding = Decoding(
        max_new_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed or 0,
    )
    retriever = body.retriever or ("memory" if memory else "bm25")
    # Checked once, before anything is generated (and before the first event of a stream,
    # so that a refusal is a JSON error, not a stream).
    request = TextRequest(body.user, instruction, strategy, body.k, retriever, history=history)
    try:
        request = await run_in_threadpool(engine.check, request)
    except UserNotFoundError:
        raise _unknown_user() from None
    if body.stream:
        chunks = _Chunks(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), body.model)
        deltas: asyncio.Queue[str | None] = asyncio.Queue()
        answer = asyncio.create_task(
            _answer(service, engine, tenant, request, decoding, memory, deltas.put_nowait)
        )
        _answering.add(answer)  # held until done, even if its client goes away
        answer.add_done_callback(_answering.discard)
        answer.add_done_callback(lambda _: deltas.put_nowait(None))  # after every delta
        return StreamingResponse(
            _stream(chunks, answer, deltas),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    result, remembered = await _answer(service, engine, tenant, request, decoding, memory)
    return {
        "id": f"chatcmpl-{result.output_id or uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": "stop",
            }
        ],
        "usage": None,
        "pgen": _pgen_field(result, remembered),
    }


async def _answer(
    service: Any,
    engine: Engine,
    tenant: str,
    request: TextRequest,
    decoding: Decoding,
    memory: bool,
    sink: TextSink | None = None,
) -> tuple[Generation, bool]:
    """The generation, then (the tenant's memory on) the user's turn remembered."""
    result = await generate(
        service, engine, request, decoding, sink=sink, checked=True, tenant=tenant
    )
    turn = turn_document(request.user_id, request.query or request.instruction)
    # The assistant's message this turn answers: a pick among its options is a choice.
    last = request.history[-1] if request.history else None
    offered = last.content if last is not None and last.role == "assistant" else None
    remembered = memory and bool(
        await run_in_threadpool(engine.remember, request.user_id, [turn], offered)
    )
    return result, remembered


@dataclass(frozen=True)
class _Chunks:
    """Server-sent events of one streamed completion."""

    completion_id: str
    created: int
    model: str

    def __call__(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return _event(data)


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(
    chunk: _Chunks,
    answer: asyncio.Future[tuple[Generation, bool]],
    deltas: asyncio.Queue[str | None],
) -> AsyncIterator[str]:
    """The role, each delta as the model decodes it, then the end with ``pgen``. A client
    that goes away stops only this loop: its request finishes in its batch (saved and
    remembered as without streaming), its deltas falling into a queue nobody reads."""
    yield chunk({"role": "assistant", "content": ""})
    streamed = ""
    while (delta := await deltas.get()) is not None:
        streamed += delta
        yield chunk({"content": delta})
    try:
        result, remembered = answer.result()
    except Exception as error:  # the status line has gone out: the error is an event
        status, body = error_json(error)
        if status == 500:
            log.error("streamed chat completion failed", exc_info=error)
        elif status > 500:  # the upstream model server's failure: its one line says it
            log.warning("streamed chat completion failed: %s", error)
        yield _event(body)
        return
    if not result.text.startswith(streamed):  # a sampled retry told another story
        yield _event(error_body("stream_revised", "the answer changed after it was streamed"))
        return
    if result.text != streamed:  # what did not come as deltas (a sink a model dropped)
        yield chunk({"content": result.text[len(streamed) :]})
    yield chunk({}, "stop", pgen=_pgen_field(result, remembered))
    yield "data: [DONE]\n\n"
