"""Stated preferences: found in the user's own chat turns with their source, kept apart from
the documents, put into every personalized text prompt within a budget (never into the
baseline's), and listed, edited and removed through the Engine and the CLI, with bad input
refused and nothing written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.context import Document, User, UserNotFoundError
from pgen.context.records import Preference
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.errors import InvalidRequest, NotFound
from pgen.models.text import TransformersTextModel
from pgen.personalize.stated import HEADING, PREFERENCE_SHARE
from pgen.run.conversation import turn_document
from pgen.usermodel.stated import find_preferences, ranked

STATED = [
    "I'm vegetarian.",
    "I avoid hotels with a bustling nightlife.",
    "I really don't enjoy games with pixel art graphics.",
    "I have a severe allergy to shellfish, so no shrimp.",
    "I have very sensitive skin and avoid any products with essential oils.",
    "I don’t consume any type of sugar.",
    "My favorite colour is green.",
    "VR headsets make me feel nauseous.",
    "I'm not really into immersive experiences.",
]
# Said in passing before a question: the opening clause is the preference.
IN_A_QUESTION = [
    ("I tend to avoid violent video games, but do you have ideas?", "I tend to avoid violent video games"),
    ("As someone who only uses vegan products, should I say so?", "As someone who only uses vegan products"),
]  # fmt: skip
NOT_STATED = [
    "Can you convert this function to Go?",
    "I'd like a summary of the article below.",
    "I love this answer, thanks!",
    "I don't understand the second step.",
    "Do you prefer cats or dogs?",
    "I want you to write ten tests for it.",
    "Translate to Polish: I want to give these cats food.",
    "I like it, but can you make it shorter?",
    "Is it vegan, or should I ask the chef?",
]


@pytest.mark.parametrize("text", STATED)
def test_the_rules_find_stated_preferences(text: str) -> None:
    (found,) = find_preferences(f"Hello there. {text} What now?")
    assert found.text == text
    assert f"Hello there. {text} What now?"[found.start : found.end] == text


@pytest.mark.parametrize(("text", "clause"), IN_A_QUESTION)
def test_a_question_opening_with_a_preference_keeps_its_clause(text: str, clause: str) -> None:
    (found,) = find_preferences(f"Thanks! {text}")
    assert found.text == clause and f"Thanks! {text}"[found.start : found.end] == clause


@pytest.mark.parametrize("text", NOT_STATED)
def test_requests_questions_and_reactions_are_no_preferences(text: str) -> None:
    assert find_preferences(text) == []


def test_ranked_puts_the_relevant_then_the_newest_first() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)

    def pref(key: str, text: str, days: int | None) -> Preference:
        when = None if days is None else start + timedelta(days=days)
        return Preference(user_id="u", preference_id=key, text=text, time=when)

    order = ranked(
        [
            pref("old", "I love jazz", 0),
            pref("new", "I avoid spicy food", 5),
            pref("hotel", "I avoid hotels with nightlife", 1),
            pref("given", "I am vegetarian", None),
        ],
        "Suggest hotels in Las Vegas",
    )
    assert [p.preference_id for p in order] == ["hotel", "given", "new", "old"]


@pytest.fixture
def engine(store: SQLiteStore, tiny_model: TransformersTextModel) -> Engine:
    store.add(
        [
            User(user_id="ana", profile={"job": "chef"}),
            *[
                Document(user_id="ana", doc_id=f"a{i}", text=f"tomato pasta recipe {i}")
                for i in range(6)
            ],
            User(user_id="raj"),
        ]
    )
    return Engine(store, tiny_model, lambda: pytest.fail("no dense retrieval"), prompt_tokens=300)


def test_remembered_turns_yield_preferences_with_their_source(engine: Engine) -> None:
    said = "Plan my week. I avoid hotels with a bustling nightlife. Thanks!"
    turn = turn_document("ana", said)
    other = turn_document("ana", "I love the mountains.", speaker="Bo")  # another speaker's
    assert engine.remember("ana", [turn, other]) == 2
    (found,) = engine.preferences("ana")
    assert found.text == "I avoid hotels with a bustling nightlife."
    assert found.origin == "detected" and found.source == turn.doc_id
    assert found.start is not None and said[found.start : found.end] == found.text
    # The same turn again finds nothing new; a removed preference stays removed.
    assert engine.remember("ana", [turn]) == 0 and len(engine.preferences("ana")) == 1
    engine.remove_preference("ana", found.preference_id)
    engine.remember("ana", [turn])
    assert engine.preferences("ana") == []
    assert engine.preferences("raj") == []  # never another user's


def test_a_transcripts_user_turns_are_the_users_own_words(engine: Engine) -> None:
    """A chat transcript names its turns by role (PrefEval's, a client's history): the
    ``user`` role's turns are read for preferences, the assistant's never."""
    mine = turn_document(
        "ana", "I find flashcards ineffective and prefer storytelling.", speaker="user"
    )
    echo = turn_document("ana", "I prefer short answers, as you asked.", speaker="assistant")
    engine.remember("ana", [mine, echo])
    assert [(p.text, p.source) for p in engine.preferences("ana")] == [
        ("I find flashcards ineffective and prefer storytelling.", mine.doc_id)
    ]


def test_ingested_chat_turns_yield_preferences_in_the_same_batch(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "turns.jsonl"
    lines = [
        {"type": "document", "user_id": "raj", "doc_id": "t1", "kind": "chat",
         "text": "I'm vegetarian. What should I cook?"},
        {"type": "document", "user_id": "raj", "doc_id": "p1", "kind": "text",
         "text": "I love this blender"},  # a post, not a turn: its words stay a document
        {"type": "preference", "user_id": "raj", "preference_id": "given",
         "text": "No nightlife, please."},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(line) for line in lines))
    stats = engine.ingest(path)
    assert stats.seen == {"document": 2, "preference": 2}  # the given one and the found one
    found = {p.preference_id: p for p in engine.preferences("raj")}
    assert found["given"].origin == "user" and found["given"].source is None
    detected = [p for p in found.values() if p.origin == "detected"]
    assert [(p.text, p.source) for p in detected] == [("I'm vegetarian.", "t1")]


def test_listing_adding_editing_and_removing(engine: Engine) -> None:
    added = engine.add_preference("ana", "  No nightlife.  ")
    assert added.text == "No nightlife." and added.origin == "user"
    edited = engine.edit_preference("ana", added.preference_id, "No nightlife, no casinos.")
    assert edited.preference_id == added.preference_id
    assert [p.text for p in engine.preferences("ana")] == ["No nightlife, no casinos."]
    assert engine.remove_preference("ana", added.preference_id).text == edited.text
    assert engine.preferences("ana") == []


def test_bad_input_is_refused_and_writes_nothing(engine: Engine, store: SQLiteStore) -> None:
    mine = engine.add_preference("ana", "I am vegetarian")
    before = store.row_counts()
    with pytest.raises(NotFound, match="no preference"):
        engine.edit_preference("ana", "pref-unknown", "x")
    with pytest.raises(NotFound, match="no preference"):  # another user's id: not found
        engine.edit_preference("raj", mine.preference_id, "I eat meat")
    with pytest.raises(NotFound, match="no preference"):
        engine.remove_preference("raj", mine.preference_id)
    with pytest.raises(UserNotFoundError):
        engine.add_preference("nobody", "I like tea")
    with pytest.raises(UserNotFoundError):
        engine.preferences("nobody")
    for blank in ("", "   ", "x" * 2001):
        with pytest.raises(InvalidRequest, match="preference field 'text'"):
            engine.add_preference("ana", blank)
        with pytest.raises(InvalidRequest, match="preference field 'text'"):
            engine.edit_preference("ana", mine.preference_id, blank)
    assert store.row_counts() == before
    assert [p.text for p in engine.preferences("ana")] == ["I am vegetarian"]
    assert not store.has_user("nobody")


def test_every_personalized_prompt_carries_them_and_the_baseline_none(engine: Engine) -> None:
    kept = engine.add_preference("ana", "I am vegetarian and avoid meat sauces")
    requests = [
        engine.check(_request("ana", strategy))
        for strategy in ("none", "rag", "profile", "lora", "lora+rag", "dpo")
    ]
    plans = engine.prepare(requests)
    for request, plan in zip(requests, plans, strict=True):
        system = plan.chat[0].content if plan.chat[0].role == "system" else ""
        if request.strategy == "none":
            assert HEADING not in system and plan.provenance.preferences == []
            assert [m.role for m in plan.chat] == ["user"] or "vegetarian" not in system
        else:
            assert HEADING in system and "- I am vegetarian and avoid meat sauces" in system
            assert plan.provenance.preferences == [kept.preference_id], request.strategy
    # A user without preferences gets the strategy's prompt unchanged.
    (plain,) = engine.prepare([engine.check(_request("raj", "rag"))])
    assert all(HEADING not in m.content for m in plain.chat)
    # The output's stored provenance names them.
    result = engine.generate(_request("ana", "rag"), max_new_tokens=2)
    assert engine.outputs("ana")[-1].provenance["preferences"] == [kept.preference_id]
    assert result.provenance.preferences == [kept.preference_id]


def test_they_take_at_most_a_share_of_the_budget_the_relevant_first(
    engine: Engine, tiny_model: TransformersTextModel
) -> None:
    wanted = engine.add_preference("ana", "no tomato pasta with cheese")
    for k in range(40):
        engine.add_preference("ana", f"I like {k}")
    (plan,) = engine.prepare([engine.check(_request("ana", "rag"))])
    used = plan.provenance.preferences
    assert used[0] == wanted.preference_id and 1 < len(used) < 41
    assert any("stated preferences left out for room" in n for n in plan.provenance.notes)
    block = plan.chat[0].content.split(HEADING)[1]
    assert tiny_model.count_tokens(HEADING + block) <= engine.prompt_tokens // PREFERENCE_SHARE
    rendered = tiny_model.render(plan.chat)  # type: ignore[attr-defined]
    assert tiny_model.count_tokens(rendered) <= engine.prompt_tokens
    assert plan.provenance.documents  # the strategy's own context still has room


def test_a_preference_whose_turn_is_already_in_the_prompt_is_not_said_twice(
    engine: Engine,
) -> None:
    from pgen.components import TextRequest

    said = turn_document("raj", "I avoid hotels with a bustling nightlife.")
    engine.remember("raj", [said, turn_document("raj", "Fix my Go loop.")])
    (found,) = engine.preferences("raj")
    # Retrieved as the one context turn: the block would only repeat it.
    hotel = TextRequest("raj", "Which hotels have a bustling nightlife?", "rag", 1, "bm25")
    (plan,) = engine.prepare([engine.check(hotel)])
    assert plan.provenance.documents == [said.doc_id]
    assert HEADING not in plan.chat[0].content and plan.provenance.preferences == []
    # Not retrieved: the block carries it.
    loop = TextRequest("raj", "Fix my Go loop again", "rag", 1, "bm25")
    (plan,) = engine.prepare([engine.check(loop)])
    assert said.doc_id not in plan.provenance.documents
    assert HEADING in plan.chat[0].content and plan.provenance.preferences == [found.preference_id]


def test_delete_user_removes_their_preferences(engine: Engine, store: SQLiteStore) -> None:
    engine.add_preference("ana", "I am vegetarian")
    engine.remember("ana", [turn_document("ana", "I avoid nightlife.")])
    assert store.row_counts("ana")["preferences"] == 2
    counts = engine.delete_user("ana")
    assert counts["preferences"] == 2 and store.row_counts("ana")["preferences"] == 0
    assert store.preferences("ana") == []


def test_the_cli_lists_adds_edits_and_removes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(tmp_path)]
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps({"type": "user", "user_id": "u1"}) + "\n")
    assert main([*home, "ingest", str(records)]) == 0
    assert main([*home, "preferences", "add", "--user", "u1", "--text", "I am vegetarian"]) == 0
    assert main([*home, "preferences", "list", "--user", "u1", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    key = listed[0]["preference_id"]
    assert [p["text"] for p in listed] == ["I am vegetarian"]
    assert (
        main([*home, "preferences", "edit", "--user", "u1", "--id", key, "--text", "I am vegan"])
        == 0
    )
    assert main([*home, "preferences", "list", "--user", "u1"]) == 0
    out = capsys.readouterr().out
    assert "I am vegan" in out and "1 stated preferences of user u1" in out
    # Bad input: one line, exit 1, nothing changed.
    assert main([*home, "preferences", "remove", "--user", "u1", "--id", "nope"]) == 1
    assert main([*home, "preferences", "remove", "--user", "u2", "--id", key]) == 1
    assert main([*home, "preferences", "edit", "--user", "u1", "--id", key]) == 1
    assert main([*home, "preferences", "remove", "--user", "u1"]) == 1
    assert main([*home, "preferences", "add", "--user", "u1", "--text", "  "]) == 1
    err = capsys.readouterr().err
    assert "no preference 'nope' of user 'u1'" in err and "needs --id" in err
    assert all(line.startswith("pgen: error:") for line in err.strip().splitlines())
    assert main([*home, "preferences", "list", "--user", "u1", "--json"]) == 0
    assert [p["text"] for p in json.loads(capsys.readouterr().out)] == ["I am vegan"]
    assert main([*home, "preferences", "remove", "--user", "u1", "--id", key]) == 0
    assert main([*home, "preferences", "list", "--user", "u1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == []


def _request(user_id: str, strategy: str) -> object:
    from pgen.components import TextRequest

    return TextRequest(user_id, "Suggest a tomato pasta dinner", strategy=strategy, k=3)
