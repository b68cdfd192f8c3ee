"""The Engine as the whole API: context, search, feedback and outputs, with bad requests
refused before anything runs or is written."""

from __future__ import annotations

import pytest

from pgen.context import Document, OutputNotFoundError, User, UserNotFoundError
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.base import GenerationSettings
from pgen.models.text import TransformersTextModel

SHORT = GenerationSettings(max_new_tokens=4)


@pytest.fixture
def engine(store: SQLiteStore, tiny_model: TransformersTextModel) -> Engine:
    store.add(
        [
            User(user_id="ana", profile={"job": "chef"}),
            *[
                Document(user_id="ana", doc_id=f"a{i}", text=f"tomato pasta recipe {i}")
                for i in range(12)
            ],
            Document(user_id="raj", doc_id="r1", text="tomato pasta is raj's too"),
        ]
    )
    return Engine(store, tiny_model, lambda: pytest.fail("no dense retrieval"), prompt_tokens=200)


def test_users_page_and_user_view(engine: Engine) -> None:
    assert [u.user_id for u in engine.users()] == ["ana", "raj"]
    assert [u.user_id for u in engine.users(offset=1, limit=1)] == ["raj"]
    view = engine.user("ana", limit=3)
    assert view.total_documents == 12 and len(view.documents) == 3
    assert view.user.profile == {"job": "chef"} and view.outputs == 0
    with pytest.raises(ValueError, match="limit must be at least 1"):
        engine.user("ana", limit=0)
    with pytest.raises(UserNotFoundError):
        engine.user("nobody")


def test_search_returns_only_the_users_documents(engine: Engine) -> None:
    hits = engine.search("ana", "tomato pasta", k=20)
    assert hits and all(hit.document.user_id == "ana" for hit in hits)
    assert [h.document.doc_id for h in engine.search("raj", "tomato pasta")] == ["r1"]
    with pytest.raises(ValueError, match="k must be at least 1"):
        engine.search("ana", "tomato", k=0)
    with pytest.raises(ValueError, match="instruction is empty"):
        engine.search("ana", "   ")


def test_bad_generate_requests_fail_before_the_model_runs(engine: Engine) -> None:
    for k in (0, -1):
        with pytest.raises(ValueError, match="k must be at least 1"):
            engine.generate("ana", "write", k=k)
    with pytest.raises(ValueError, match="instruction is empty"):
        engine.generate("ana", " \n")
    with pytest.raises(ValueError, match="unknown retriever"):
        engine.generate("ana", "write", retriever="magic")
    assert engine.store.outputs("ana") == []


def test_a_cut_instruction_is_said_in_provenance(engine: Engine) -> None:
    result = engine.generate("ana", "tomato " * 2000, generation=SHORT)
    assert any("instruction cut" in note for note in result.provenance.notes)
    stored = engine.store.output("ana", result.output_id or "")
    assert stored.provenance["notes"] == result.provenance.notes


def test_feedback_on_own_outputs_only(engine: Engine) -> None:
    mine = engine.generate("ana", "write a recipe", generation=SHORT)
    theirs = engine.generate("raj", "write a recipe", generation=SHORT)
    record = engine.feedback("ana", output_id=mine.output_id, thumbs=1)
    assert record.prompt == "write a recipe"  # taken from the output
    assert [f.feedback_id for f in engine.store.feedback("ana")] == [record.feedback_id]
    # Another user's output id is as unknown as a made-up one, and nothing is written.
    for output_id in (theirs.output_id, "made-up"):
        with pytest.raises(OutputNotFoundError):
            engine.feedback("ana", output_id=output_id, thumbs=-1)
    with pytest.raises(ValueError, match="either output_id with thumbs"):
        engine.feedback("ana", output_id=mine.output_id)
    engine.feedback("ana", prompt="write", chosen="a good one", rejected="a bad one")
    assert len(engine.store.feedback("ana")) == 2 and engine.store.feedback("raj") == []
    assert [o.output_id for o in engine.outputs("ana")] == [mine.output_id]
