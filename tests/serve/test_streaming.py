"""Streaming while decoding: a request's text reaches the event loop before the model has
finished, concurrent streams share one model batch and each gets only its own text, a
retried batch sends nothing twice, and an error after the first event is an event."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from pgen.context.records import Document, User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.base import AdapterRef, Chat, GenerationSettings, TextSink
from pgen.models.text import TransformersTextModel
from pgen.personalize import TextRequest
from pgen.results import Generation
from pgen.serve.batching import Batcher
from tests.serve.conftest import tenant_records
from tests.serve.server import Running, serve_in_thread, service_config

LONG = GenerationSettings(max_new_tokens=32)
EXPLODE = "explode after streaming"


def no_embedder() -> object:
    raise AssertionError("bm25 needs no embedder")


class Wrapped:
    """The tiny model behind a test double: it records each call's batch size, and a
    batch fails after streaming when one of its chats asks to (as a batch whose outputs
    cannot be saved fails after the model has run)."""

    def __init__(self, real: TransformersTextModel, fail_batches: bool = False) -> None:
        self.real = real
        self.name = real.name
        self.fail_batches = fail_batches
        self.batch_sizes: list[int] = []

    @property
    def context_length(self) -> int:
        return self.real.context_length

    def count_tokens(self, text: str) -> int:
        return self.real.count_tokens(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self.real.truncate(text, max_tokens)

    def generate(
        self,
        chats: list[Chat],
        config: GenerationSettings | None = None,
        adapters: Sequence[AdapterRef | None] | None = None,
        *,
        sinks: Sequence[TextSink | None] | None = None,
    ) -> list[str]:
        self.batch_sizes.append(len(chats))
        replies = self.real.generate(chats, config, adapters, sinks=sinks)
        if (self.fail_batches and len(chats) > 1) or any(EXPLODE in c[-1].content for c in chats):
            raise RuntimeError("the batch failed after streaming")
        return replies


class Plain(Wrapped):
    """A model whose generate takes no sinks (benchmarks' and tests' own small models)."""

    def generate(  # type: ignore[override]
        self,
        chats: list[Chat],
        config: GenerationSettings | None = None,
        adapters: Sequence[AdapterRef | None] | None = None,
    ) -> list[str]:
        return self.real.generate(chats, config, adapters)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "s.sqlite") as opened:
        opened.add(
            [User(user_id="u"), Document(user_id="u", doc_id="d", text="the battery lasts long")]
        )
        yield opened


def run_batcher(
    engine: Engine, requests: list[TextRequest], settings: GenerationSettings
) -> tuple[list[Generation], list[list[str]]]:
    """The requests at once through a batcher, each with a sink (on the event loop)."""

    async def run() -> tuple[list[Generation], list[list[str]]]:
        batcher = Batcher(max_batch=8, wait_s=0.3)
        await batcher.start()
        deltas: list[list[str]] = [[] for _ in requests]
        try:
            results = await asyncio.gather(
                *(
                    batcher.generate(engine, r, settings, sink=row.append)
                    for r, row in zip(requests, deltas, strict=True)
                )
            )
        finally:
            await batcher.stop()
        return list(results), deltas

    return asyncio.run(run())


def test_text_reaches_the_event_loop_while_the_model_still_decodes(
    store: SQLiteStore, tiny_llama: Path
) -> None:
    model = TransformersTextModel(str(tiny_llama), name="tiny", batch_size=8)
    steps = 0
    on_loop = threading.Event()
    waited: list[bool] = []

    def count(module: object, args: object, output: object) -> None:
        nonlocal steps
        steps += 1
        if steps == 8:  # deltas are on their way: hold the model until the loop has one
            waited.append(on_loop.wait(120))

    handle = model.model.register_forward_hook(count)
    loop_steps: list[int] = []
    threads: set[threading.Thread] = set()

    async def run() -> Generation:
        batcher = Batcher(max_batch=8, wait_s=0)
        await batcher.start()

        def sink(delta: str) -> None:
            threads.add(threading.current_thread())
            loop_steps.append(steps)
            on_loop.set()

        try:
            return await batcher.generate(engine, TextRequest("u", "battery"), LONG, sink=sink)
        finally:
            await batcher.stop()

    try:
        engine = Engine(store, model, no_embedder)  # type: ignore[arg-type]
        result = asyncio.run(run())
    finally:
        handle.remove()
    assert waited == [True]  # the loop had text while the model was held mid-decoding
    assert loop_steps[0] <= 8 < steps  # ... and the model decoded on after it
    assert len(loop_steps) > 2 and result.text
    assert threads == {threading.main_thread()}  # the event loop's, not the model's


def test_a_retried_batch_sends_no_text_twice(
    store: SQLiteStore, serve_model: TransformersTextModel
) -> None:
    model = Wrapped(serve_model, fail_batches=True)
    engine = Engine(store, model, no_embedder)  # type: ignore[arg-type]
    requests = [
        TextRequest("u", "battery"),
        TextRequest("u", "tell me a longer story"),
        TextRequest("u", "hi"),
    ]
    results, deltas = run_batcher(engine, requests, LONG)
    assert model.batch_sizes == [3, 1, 1, 1]  # streamed as a batch, failed, then one by one
    for result, row in zip(results, deltas, strict=True):
        assert "".join(row) == result.text and len(row) > 1
    alone = [serve_model.generate([[*r.prompt]], LONG)[0] for r in results]
    assert [r.text for r in results] == alone


def test_a_model_that_cannot_stream_sends_its_reply_whole(
    store: SQLiteStore, serve_model: TransformersTextModel
) -> None:
    engine = Engine(store, Plain(serve_model), no_embedder)  # type: ignore[arg-type]
    results, deltas = run_batcher(
        engine, [TextRequest("u", "battery"), TextRequest("u", "hi")], LONG
    )
    assert deltas == [[r.text] for r in results]


# -- through the server, with the openai client ------------------------------------------
@pytest.fixture(scope="module")
def streaming_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path, serve_model: TransformersTextModel
) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("streaming-home")
    config = service_config(home, tiny_llama, serve_batch_wait_ms=500)
    model = Wrapped(serve_model)
    with serve_in_thread(config, tenants=("acme",), text_model=model) as running:
        with running.client("acme") as client:
            response = client.post("/records", json={"records": tenant_records("acme")})
            assert response.status_code == 200, response.text
        yield running


def client_for(server: Running) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.keys["acme"], base_url=f"{server.url}/v1", max_retries=0)


def complete(server: Running, prompt: str, max_tokens: int = 24) -> str:
    completion = client_for(server).chat.completions.create(
        model="pgen/rag",
        user="alice",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
    )
    return str(completion.choices[0].message.content)


def stream_text(
    server: Running, prompt: str, max_tokens: int = 24
) -> tuple[list[str], dict[str, Any]]:
    chunks = list(
        client_for(server).chat.completions.create(
            model="pgen/rag",
            user="alice",
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            max_tokens=max_tokens,
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    return [p or "" for p in pieces], chunks[-1].model_extra["pgen"]  # type: ignore[index]


def test_concurrent_streams_share_one_batch_and_each_gets_its_own_text(
    streaming_server: Running,
) -> None:
    # A question (the assistant frame) and a text of the user's own (the author frame): the
    # tiny random model's greedy text barely depends on the request, but it does on the frame.
    prompts = ["what about my battery?", "Write a short bio about my hiking"]
    alone = [complete(streaming_server, p) for p in prompts]
    assert alone[0] != alone[1]
    batcher = streaming_server.app.state.service.batcher
    with streaming_server.client("acme") as rest:
        # An answer is sent just before its batch is counted: the server says when it is.
        assert batcher.settled(timeout=120)
        before = rest.get("/ready").json()["batches"]
        with ThreadPoolExecutor(2) as pool:
            streamed = list(pool.map(lambda p: stream_text(streaming_server, p), prompts))
        assert batcher.settled(timeout=120)
        after = rest.get("/ready").json()["batches"]
        assert after["requests"] - before["requests"] == 2
        assert after["batches"] - before["batches"] == 1  # the two shared one model batch
        outputs = {o["output_id"]: o for o in rest.get("/users/alice/outputs").json()}
    for (pieces, extension), text in zip(streamed, alone, strict=True):
        assert "".join(pieces) == text and len(pieces) > 1  # its own text, in pieces
        assert outputs[extension["output_id"]]["text"] == text  # saved as streamed


def test_a_client_that_leaves_mid_stream_breaks_nothing_for_the_other(
    streaming_server: Running,
) -> None:
    stays, leaves = "tell me about hiking in the mountains", "what about my battery?"
    alone = complete(streaming_server, stays, 200)
    body = {
        "model": "pgen/rag",
        "user": "alice",
        "stream": True,
        "max_tokens": 200,  # the same settings: the two share a batch
        "messages": [{"role": "user", "content": leaves}],
    }
    headers = {"Authorization": f"Bearer {streaming_server.keys['acme']}"}

    def leave() -> int:
        url = f"{streaming_server.url}/v1/chat/completions"
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
            events = 0
            for line in response.iter_lines():
                events += bool(line)
                if events == 3:  # the role and some text: gone, mid-answer
                    return events
        return events

    with ThreadPoolExecutor(2) as pool:
        left = pool.submit(leave)
        stayed = pool.submit(stream_text, streaming_server, stays, 200)
        assert left.result() > 0
        pieces, _ = stayed.result()
    assert "".join(pieces) == alone
    assert complete(streaming_server, stays, 200) == alone  # and the server goes on


def test_an_error_after_the_first_event_is_the_last_event(streaming_server: Running) -> None:
    with pytest.raises(openai.APIError, match="internal error"):
        stream_text(streaming_server, EXPLODE)
    body = {
        "model": "pgen/rag",
        "user": "alice",
        "stream": True,
        "messages": [{"role": "user", "content": EXPLODE}],
    }
    headers = {"Authorization": f"Bearer {streaming_server.keys['acme']}"}
    url = f"{streaming_server.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        events = [json.loads(line[6:]) for line in response.iter_lines() if line]
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert any(e.get("choices", [{}])[0].get("delta", {}).get("content") for e in events[1:-1])
    assert events[-1] == {
        "error": {"type": "internal_error", "code": "internal_error", "message": "internal error"}
    }


def test_a_stream_whose_answer_changed_on_retry_ends_in_an_error_not_in_other_text() -> None:
    from pgen.personalize.base import Provenance
    from pgen.serve.openai import _Chunks, _stream

    async def events(streamed: list[str], final: str) -> list[str]:
        deltas: asyncio.Queue[str | None] = asyncio.Queue()
        for delta in [*streamed, None]:
            deltas.put_nowait(delta)
        answer: asyncio.Future[tuple[Generation, bool]] = asyncio.Future()
        answer.set_result((Generation("o1", "u", "rag", final, Provenance(), [], {}), False))
        chunks = _Chunks("chatcmpl-1", 0, "pgen/rag")
        return [event async for event in _stream(chunks, answer, deltas)]

    revised = asyncio.run(events(["a sampled", " reply"], "a sampled story"))
    assert json.loads(revised[-1][6:])["error"]["code"] == "stream_revised"
    whole = asyncio.run(events(["a sampled", " reply"], "a sampled reply"))
    assert whole[-1] == "data: [DONE]\n\n"
    assert json.loads(whole[-2][6:])["pgen"]["output_id"] == "o1"
