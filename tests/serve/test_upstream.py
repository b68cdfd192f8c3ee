"""``pgen serve`` in front of an upstream OpenAI-compatible server, as with vLLM:
``text_model = "openai:MODEL@URL"``. Real parts end to end: the official ``openai`` client,
pgen's uvicorn server on loopback and a local upstream server decoding with the tiny model,
which records what pgen sent it. Asserted: the personalized prompt goes upstream (and no
other user's or tenant's context does), the upstream's answer comes back whole or
streamed with pgen's provenance, a user's adapter is asked for by name, and an upstream
that fails is a clear 502, not an internal error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from pgen.config import Config
from pgen.context.artifacts import ADAPTER_NAME, ArtifactMeta, lora_fingerprint, write_meta
from pgen.context.sqlite import SQLiteStore
from pgen.models.text import TransformersTextModel
from tests.serve.conftest import CANARY, tenant_records
from tests.serve.server import Running, free_port, serve_in_thread
from tests.serve.test_openai import client_for
from tests.upstream_server import MODEL, ChatServer, chat_server

QUESTION = "what about my battery and screen?"
BOBS_DOCUMENT = "politics and sports news"  # acme-bob's: never in alice's prompts


def upstream_config(home: Path, base_url: str) -> Config:
    return Config(home=home, text_model=f"openai:{MODEL}@{base_url}", max_new_tokens=6, threads=1)


def document_texts(tenant: str) -> dict[str, str]:
    return {
        r["doc_id"]: r["text"]
        for r in tenant_records(tenant)
        if r["type"] == "document" and r["user_id"] == "alice"
    }


def prompt_of(sent: dict[str, Any]) -> str:
    """Everything the upstream was asked, the system message (the documents) included."""
    return "\n".join(str(m["content"]) for m in sent["messages"])


@pytest.fixture(scope="module")
def upstream_server(serve_model: TransformersTextModel) -> Iterator[ChatServer]:
    with chat_server(serve_model) as running:
        yield running


@pytest.fixture
def upstream(upstream_server: ChatServer) -> ChatServer:
    """The module's upstream, with nothing recorded yet: each test sees its own requests."""
    upstream_server.reset()
    return upstream_server


@pytest.fixture(scope="module")
def pgen(
    tmp_path_factory: pytest.TempPathFactory, upstream_server: ChatServer
) -> Iterator[Running]:
    # No ready text model is handed in: the service builds its client from the config, as
    # `pgen serve --text-model openai:...` does.
    home = tmp_path_factory.mktemp("upstream-home")
    with serve_in_thread(upstream_config(home, upstream_server.url)) as running:
        for tenant in CANARY:
            with running.client(tenant) as client:
                response = client.post("/records", json={"records": tenant_records(tenant)})
                assert response.status_code == 200, response.text
        yield running


def test_the_personalized_prompt_goes_upstream_and_its_answer_comes_back(
    pgen: Running, upstream: ChatServer
) -> None:
    completion = client_for(pgen).chat.completions.create(
        model="pgen/rag",
        user="alice",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": QUESTION},
        ],
    )
    (sent,) = upstream.requests_seen  # one request, not one per message or retry
    assert sent["path"] == "/v1/chat/completions" and sent["model"] == MODEL
    assert not sent.get("stream") and sent["temperature"] == 0.0 and sent["max_tokens"] == 6
    prompt = prompt_of(sent)
    extension = completion.model_extra["pgen"]  # type: ignore[index]
    used = extension["provenance"]["documents"]
    assert used[0] == "a2"  # the battery-and-screen document ranks first
    texts = document_texts("acme")
    assert QUESTION in prompt and all(texts[doc] in prompt for doc in used)
    assert BOBS_DOCUMENT not in prompt
    # pgen's reply is the upstream's, its surrounding whitespace aside.
    (reply,) = upstream.replies
    assert completion.choices[0].message.content == reply.strip() != ""
    assert extension["user"] == "alice" and extension["strategy"] == "rag"
    with pgen.client("acme") as rest:  # the output id names the saved output
        (saved,) = [
            o
            for o in rest.get("/users/alice/outputs").json()
            if o["output_id"] == extension["output_id"]
        ]
        assert saved["text"] == reply.strip()
    # The other tenant's alice gets her own context, and neither crosses over.
    client_for(pgen, "globex").chat.completions.create(
        model="pgen/rag", user="alice", messages=[{"role": "user", "content": QUESTION}]
    )
    acme_sent, globex_sent = upstream.requests_seen
    assert CANARY["acme"] in prompt_of(acme_sent) and CANARY["globex"] not in json.dumps(acme_sent)
    assert CANARY["globex"] in prompt_of(globex_sent) and CANARY["acme"] not in json.dumps(
        globex_sent
    )


def test_a_streamed_completion_is_relayed_from_the_upstream_stream(
    pgen: Running, upstream: ChatServer
) -> None:
    client = client_for(pgen)
    messages: Any = [{"role": "user", "content": QUESTION}]
    whole = client.chat.completions.create(model="pgen/rag", user="alice", messages=messages)
    upstream.reset()
    chunks = list(
        client.chat.completions.create(
            model="pgen/rag", user="alice", messages=messages, stream=True
        )
    )
    (sent,) = upstream.requests_seen
    assert sent["stream"] is True  # pgen streams from upstream, not whole then split
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    pieces = [c.choices[0].delta.content or "" for c in chunks[1:-1]]
    assert len(pieces) > 1  # relayed as the upstream sent them, not in one piece
    (reply,) = upstream.replies
    assert "".join(pieces) == reply.strip() == whole.choices[0].message.content  # greedy
    extension = chunks[-1].model_extra["pgen"]  # type: ignore[index]
    assert extension["output_id"] and extension["strategy"] == "rag"
    assert (
        extension["provenance"]["documents"]
        == whole.model_extra["pgen"]["provenance"][  # type: ignore[index]
            "documents"
        ]
    )


def test_the_none_baseline_sends_the_instruction_alone(pgen: Running, upstream: ChatServer) -> None:
    completion = client_for(pgen).chat.completions.create(
        model="pgen/none", user="alice", messages=[{"role": "user", "content": QUESTION}]
    )
    (sent,) = upstream.requests_seen
    prompt = prompt_of(sent)
    assert QUESTION in prompt
    assert not any(text in prompt for text in document_texts("acme").values())
    assert CANARY["acme"] not in prompt  # nor her profile
    assert completion.model_extra["pgen"]["provenance"]["documents"] == []  # type: ignore[index]


def test_a_users_adapter_is_asked_for_by_name(pgen: Running, upstream: ChatServer) -> None:
    """A LoRA served upstream (vLLM's --lora-modules lora-alice=FOLDER) is chosen by the
    request's ``model``. pgen never reads the weights then, so the adapter here is its
    metadata alone, written as `pgen train` writes it: the base is the upstream model and
    the fingerprint that of alice's documents (else it would be refused as stale)."""
    with SQLiteStore(pgen.config.home / "tenants" / "acme" / "pgen.sqlite") as store:
        folder = store.artifact_path("alice", "lora", ADAPTER_NAME)
        current = lora_fingerprint(store, "alice", task=None)
        write_meta(
            folder,
            ArtifactMeta("lora", "alice", ADAPTER_NAME, f"{MODEL}@{upstream.url}", current),
        )
    client = client_for(pgen)
    with_adapter = client.chat.completions.create(
        model="pgen/lora+rag", user="alice", messages=[{"role": "user", "content": QUESTION}]
    )
    without = client.chat.completions.create(
        model="pgen/lora", user="acme-bob", messages=[{"role": "user", "content": "news?"}]
    )
    alice_sent, bob_sent = upstream.requests_seen
    assert alice_sent["model"] == "lora-alice"
    assert document_texts("acme")["a2"] in prompt_of(alice_sent)  # lora+rag: documents too
    provenance = with_adapter.model_extra["pgen"]["provenance"]  # type: ignore[index]
    assert str(folder) in provenance["artifacts"]
    assert "lora-alice" in provenance["model"]
    assert bob_sent["model"] == MODEL  # no adapter: the base model, and a note says so
    notes = without.model_extra["pgen"]["provenance"]["notes"]  # type: ignore[index]
    assert any("no lora adapter" in note for note in notes)


def test_an_upstream_that_fails_is_a_502_naming_it(pgen: Running, upstream: ChatServer) -> None:
    upstream.fail_with = 503
    client = client_for(pgen)
    messages: Any = [{"role": "user", "content": QUESTION}]
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="pgen/rag", user="alice", messages=messages)
    assert caught.value.status_code == 502
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "upstream_error"
    assert "text model server" in error["message"] and "503" in error["message"]
    assert len(upstream.requests_seen) == 1  # failed once, not retried by pgen


def test_an_upstream_that_is_down_is_a_502_whole_or_streamed(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with serve_in_thread(upstream_config(tmp_path, closed), tenants=("acme",)) as running:
        with running.client("acme") as rest:
            response = rest.post("/records", json={"records": tenant_records("acme")})
            assert response.status_code == 200, response.text
            body = {
                "model": "pgen/rag",
                "user": "alice",
                "messages": [{"role": "user", "content": "hi"}],
            }
            response = rest.post("/v1/chat/completions", json=body)
        assert response.status_code == 502
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert error["code"] == "upstream_error"
        assert error["message"].startswith("upstream text model server unreachable")
        assert closed not in response.text  # the server's address stays with the operator
        assert "unreachable" in error["message"] and "Traceback" not in response.text
        # Streamed, the status line has gone out before the model runs: the same error is
        # the stream's last event, which the official client raises.
        client = client_for(running)
        stream = client.chat.completions.create(
            model="pgen/rag",
            user="alice",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        with pytest.raises(
            openai.APIError, match=r"^upstream text model server (unreachable|failed)"
        ):
            list(stream)


def test_earlier_turns_go_upstream_as_chat_messages_newest_kept(
    pgen: Running, upstream: ChatServer
) -> None:
    earlier = [
        {"role": "user", "content": "my name is Zed and I fix bikes"},
        {"role": "assistant", "content": "Nice to meet you, Zed."},
    ]
    completion = client_for(pgen).chat.completions.create(
        model="pgen/rag",
        user="alice",
        messages=[
            {"role": "system", "content": "be brief"},
            *earlier,
            {"role": "user", "content": QUESTION},
        ],  # type: ignore[list-item]
    )
    (sent,) = upstream.requests_seen
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "user", "assistant", "user"]  # real turns, not a transcript
    assert [m["content"] for m in sent["messages"][1:]] == [
        earlier[0]["content"],
        earlier[1]["content"],
        QUESTION,
    ]
    assert "a2" in sent["messages"][0]["content"] or "battery" in sent["messages"][0]["content"]
    assert not any("user:" in str(m["content"]) for m in sent["messages"])
    notes = completion.model_extra["pgen"]["provenance"]["notes"]  # type: ignore[index]
    assert not any("earlier turns dropped" in n for n in notes)

    # A conversation longer than the prompt budget: the oldest turns go, and it is said.
    upstream.reset()
    many = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "words " * 30}
        for i in range(40)
    ]
    completion = client_for(pgen).chat.completions.create(
        model="pgen/none",
        user="alice",
        messages=[*many, {"role": "user", "content": QUESTION}],  # type: ignore[list-item]
    )
    (sent,) = upstream.requests_seen
    contents = [m["content"] for m in sent["messages"]]
    assert contents[-1] == QUESTION and contents[-2] == many[-1]["content"].strip()
    assert many[0]["content"].strip() not in contents and 2 < len(contents) < 40
    notes = completion.model_extra["pgen"]["provenance"]["notes"]  # type: ignore[index]
    dropped = [n for n in notes if "earlier turns dropped (oldest first)" in n]
    assert dropped and dropped[0].startswith(f"{42 - len(contents)} of 40 ")
