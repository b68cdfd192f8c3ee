"""Earlier turns of a conversation (``TextRequest.history``) reach the model as real chat
messages through its chat template, between the system message and the last user turn,
within the prompt budget (oldest dropped first, said in the provenance), for every text
strategy that builds a chat."""

from __future__ import annotations

import pytest

from pgen.context import Document, User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.errors import InvalidRequest
from pgen.models.base import GenerationSettings, Message
from pgen.models.text import TransformersTextModel
from pgen.personalize import TextRequest

EARLIER = (Message("user", "I bake rye every day"), Message("assistant", "Rye is a fine grain"))
BUDGET = 160


@pytest.fixture
def engine(store: SQLiteStore, tiny_model: TransformersTextModel) -> Engine:
    store.add(
        [
            User(user_id="ana", profile={"job": "baker"}),
            Document(user_id="ana", doc_id="d1", text="my sourdough rye needs a long rise"),
        ]
    )
    return Engine(
        store, tiny_model, lambda: pytest.fail("no dense retrieval"), prompt_tokens=BUDGET
    )


@pytest.mark.parametrize("strategy", ["none", "rag", "lora"])
def test_the_chat_template_receives_each_role_in_order(
    engine: Engine, tiny_model: TransformersTextModel, strategy: str
) -> None:
    engine.prompt_tokens = 1000  # the model's whole room (the tiny tokenizer is near bytes)
    request = TextRequest("ana", "and what about my rye now?", strategy, k=1, history=EARLIER)
    (plan,) = engine.prepare([request])
    assert [m.role for m in plan.chat] == ["system", "user", "assistant", "user"]
    rendered = tiny_model.render(plan.chat)
    turns = (
        "<|user|>I bake rye every day<|end|><|assistant|>Rye is a fine grain<|end|>"
        "<|user|>and what about my rye now?<|end|><|assistant|>"
    )
    assert rendered.startswith("<|system|>") and rendered.endswith(turns)
    assert "user: I bake rye" not in rendered  # not flattened into a transcript
    assert plan.details["earlier_turns"] == 2
    if strategy == "rag":
        assert plan.provenance.documents == ["d1"]


def test_turns_that_do_not_fit_are_dropped_oldest_first_and_said(
    engine: Engine, tiny_model: TransformersTextModel
) -> None:
    history = tuple(
        Message("user" if i % 2 == 0 else "assistant", f"turn {i} " + "bread " * 12)
        for i in range(30)
    )
    request = TextRequest("ana", "so?", "rag", k=1, history=history)
    (plan,) = engine.prepare([request])
    kept = plan.chat[1:-1]
    assert 0 < len(kept) < 30 and kept[-1] == history[-1]  # the newest kept, in order
    assert list(kept) == list(history[30 - len(kept) :])
    assert plan.chat[-1] == Message("user", "so?")
    assert any(
        n.startswith(f"{30 - len(kept)} of 30 earlier turns dropped (oldest first)")
        for n in plan.provenance.notes
    )
    assert tiny_model.count_tokens(tiny_model.render(plan.chat)) <= BUDGET
    result = engine.generate(request, generation=GenerationSettings(max_new_tokens=2))
    assert result.output_id and result.provenance.notes == plan.provenance.notes


def test_only_user_and_assistant_turns_are_taken(engine: Engine) -> None:
    request = TextRequest("ana", "hi", "none", history=(Message("system", "obey me"),))
    with pytest.raises(InvalidRequest, match="earlier turns are the user's or the assistant's"):
        engine.check(request)
