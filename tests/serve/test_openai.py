"""The OpenAI-compatible endpoint, driven by the official ``openai`` client: models,
completions personalized by ``user``, streaming, provenance, memory, errors."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.serve.server import Running


def client_for(server: Running, tenant: str = "acme") -> openai.OpenAI:
    return openai.OpenAI(api_key=server.keys[tenant], base_url=f"{server.url}/v1", max_retries=0)


def test_models_list_every_text_strategy(server: Running) -> None:
    ids = [model.id for model in client_for(server).models.list()]
    assert {"pgen", "pgen/none", "pgen/rag", "pgen/profile", "pgen/lora+rag"} <= set(ids)


def test_a_completion_is_personalized_for_the_user_with_provenance(server: Running) -> None:
    client = client_for(server)
    completion = client.chat.completions.create(
        model="pgen/rag",
        user="alice",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what about my battery and screen?"},
        ],
        max_tokens=4,
    )
    assert completion.object == "chat.completion"
    assert isinstance(completion.choices[0].message.content, str)
    extension = completion.model_extra["pgen"]  # type: ignore[index]
    assert extension["user"] == "alice" and extension["strategy"] == "rag"
    assert extension["provenance"]["documents"][0] == "a2"
    # The output id closes the loop: feedback on it is accepted.
    with server.client("acme") as rest:
        response = rest.post(
            "/users/alice/feedback", json={"output_id": extension["output_id"], "thumbs": 1}
        )
        assert response.status_code == 200
    # The strategy may come from an extension field as well as from the model name.
    baseline = client.chat.completions.create(
        model="pgen",
        user="alice",
        messages=[{"role": "user", "content": "battery?"}],
        extra_body={"strategy": "none"},
    )
    assert baseline.model_extra["pgen"]["provenance"]["documents"] == []  # type: ignore[index]


def test_streaming_sends_the_same_answer_in_pieces(server: Running) -> None:
    client = client_for(server)
    messages = [{"role": "user", "content": "tell me about hiking"}]
    whole = client.chat.completions.create(
        model="pgen/rag",
        user="alice",
        messages=messages,
        seed=0,  # type: ignore[arg-type]
    )
    stream = client.chat.completions.create(
        model="pgen/rag",
        user="alice",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        seed=0,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert "".join(p or "" for p in pieces) == whole.choices[0].message.content  # greedy
    assert len(pieces) > 1  # sent as decoded, piece by piece
    extension = chunks[-1].model_extra["pgen"]  # type: ignore[index]
    assert extension["provenance"]["documents"] and extension["output_id"]
    assert extension["output_id"] != whole.model_extra["pgen"]["output_id"]  # type: ignore[index]


def test_errors_come_back_as_openai_errors(server: Running) -> None:
    client = client_for(server)
    with pytest.raises(openai.NotFoundError):  # an unknown user
        client.chat.completions.create(
            model="pgen/rag", user="nobody", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="gpt-4o", user="alice", messages=[{"role": "user", "content": "hi"}]
        )
    assert "pgen/" in str(caught.value)
    with pytest.raises(openai.BadRequestError):  # no user named
        client.chat.completions.create(
            model="pgen/rag", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="wrong", base_url=f"{server.url}/v1", max_retries=0).models.list()


def test_a_stream_that_cannot_start_is_refused_with_a_json_error(server: Running) -> None:
    client = client_for(server)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="pgen/rag",
            user="nobody",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
    headers = {"Authorization": f"Bearer {server.keys['acme']}"}
    url = f"{server.url}/v1/chat/completions"
    for user, model, status in [("nobody", "pgen/rag", 404), ("alice", "gpt-4o", 404)]:
        body = {
            "model": model,
            "user": user,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        response = httpx.post(url, json=body, headers=headers, timeout=60)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] in {"user_not_found", "model_not_found"}
    body = {
        "model": "pgen/rag",
        "user": "alice",
        "stream": True,
        "retriever": "nope",
        "messages": [{"role": "user", "content": "hi"}],
    }
    response = httpx.post(url, json=body, headers=headers, timeout=60)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def test_memory_stores_each_turn_once_when_the_tenant_turns_it_on(server: Running) -> None:
    client = client_for(server, "globex")
    with server.client("globex") as rest:
        assert rest.get("/settings").json() == {"memory": False}
        assert rest.put("/settings", json={"memory": True}).json() == {"memory": True}
        try:
            turn = "I just adopted a grey cat called Miso"
            for _ in range(2):  # the same turn twice: one document
                completion = client.chat.completions.create(
                    model="pgen/rag", user="newcomer", messages=[{"role": "user", "content": turn}]
                )
            assert completion.model_extra["pgen"]["remembered"] is False  # type: ignore[index]
            view = rest.get("/users/newcomer").json()
            assert [d["text"] for d in view["documents"]] == [turn]
            assert view["documents"][0]["kind"] == "chat"
            later = client.chat.completions.create(
                model="pgen/rag",
                user="newcomer",
                messages=[{"role": "user", "content": "what is my cat called?"}],
            )
            used = later.model_extra["pgen"]["provenance"]["documents"]  # type: ignore[index]
            assert used == [view["documents"][0]["doc_id"]]
            # A memory tenant recalls through the conversation-memory retriever by default.
            (saved,) = [
                o
                for o in rest.get("/users/newcomer/outputs").json()
                if o["output_id"] == later.model_extra["pgen"]["output_id"]  # type: ignore[index]
            ]
            assert saved["provenance"]["details"]["retriever"] == "memory", saved
        finally:
            rest.put("/settings", json={"memory": False})
    with server.client("acme") as acme:  # the other tenant's setting is its own
        assert acme.get("/settings").json() == {"memory": False}
        assert acme.get("/users/newcomer").status_code == 404


def test_a_pick_among_the_assistants_options_is_kept_as_a_choice(server: Running) -> None:
    """The endpoint stores the user's turn; the assistant's last message in the request is
    the offer, so "option 2" is kept with what option 2 was."""
    client = client_for(server, "globex")
    offer = "Ideas for tonight:\n1. A horror marathon.\n2. A romantic comedy.\n3. A war film."
    with server.client("globex") as rest:
        rest.put("/settings", json={"memory": True})
        try:
            client.chat.completions.create(
                model="pgen/rag",
                user="chooser",
                messages=[
                    {"role": "user", "content": "What should I watch tonight?"},
                    {"role": "assistant", "content": offer},
                    {"role": "user", "content": "I'll go with option 2."},
                ],
            )
            (choice,) = rest.get("/users/chooser/preferences").json()
            assert choice["origin"] == "choice" and 'Chose "A romantic comedy."' in choice["text"]
            (turn,) = rest.get("/users/chooser").json()["documents"]
            assert choice["source"] == turn["doc_id"] and turn["text"] == "I'll go with option 2."
        finally:
            rest.put("/settings", json={"memory": False})


def test_raw_sse_lines(server: Running) -> None:
    body = {
        "model": "pgen/none",
        "user": "alice",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"Authorization": f"Bearer {server.keys['acme']}"}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"


def test_an_unknown_user_is_explained_alike_whether_absent_or_another_tenants(
    server: Running,
) -> None:
    client = client_for(server)  # acme's key; globex-bob is globex's user
    said = {}
    for user in ("nobody-at-all", "globex-bob"):  # the same bytes: see test_tenants too
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(
                model="pgen/rag", user=user, messages=[{"role": "user", "content": "hi"}]
            )
        error = caught.value.body
        assert isinstance(error, dict) and error["code"] == "user_not_found"
        said[user] = error["message"]
        assert user not in error["message"]  # never echoed: it may be another tenant's
    assert said["nobody-at-all"] == said["globex-bob"]
    assert "no such user for this API key" in said["globex-bob"]
    assert "POST /records" in said["globex-bob"]
