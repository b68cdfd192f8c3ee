from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from pgen.context import Document, User
from pgen.context.sqlite import SQLiteStore
from pgen.context.sqlite import SQLiteStore as StoreType
from pgen.engine import Engine
from pgen.errors import InvalidRequest
from pgen.models.base import GenerationSettings
from pgen.models.text import TransformersTextModel
from pgen.personalize import TextRequest
from pgen.personalize.base import SYSTEM
from pgen.personalize.frames import FRAMINGS, choose
from pgen.personalize.prompts import MIN_ITEM_TOKENS, pack_documents
from pgen.results import Generation

SHORT = GenerationSettings(max_new_tokens=4)
LONG_TEXT = "the battery lasts long and the screen is bright " * 80


@pytest.fixture
def engine(store: SQLiteStore, tiny_model: TransformersTextModel) -> Engine:
    store.add(
        [
            User(user_id="ana", profile={"job": "chef"}),
            Document(
                user_id="ana",
                doc_id="a1",
                text="pasta with tomato sauce and basil",
                time=datetime(2024, 1, 1),
            ),
            Document(
                user_id="ana",
                doc_id="a2",
                text="lemon tart with a buttery crust",
                time=datetime(2024, 2, 1),
            ),
            Document(
                user_id="ana",
                doc_id="a3",
                text=LONG_TEXT,
                title="battery",
                time=datetime(2024, 3, 1),
            ),
            Document(
                user_id="raj", doc_id="r1", text="rust compiler and python battery performance"
            ),
        ]
    )
    return Engine(
        store,
        tiny_model,
        embedder=lambda: pytest.fail("no dense retrieval here"),
        prompt_tokens=200,
    )


def prompt_text(generation: Generation) -> str:
    return "\n".join(message.content for message in generation.prompt)


def test_none_is_the_instruction_alone(engine: Engine) -> None:
    result = engine.generate("ana", "write about battery", strategy="none", generation=SHORT)
    assert [m.content for m in result.prompt] == [SYSTEM, "write about battery"]
    assert result.provenance.documents == []


def test_rag_puts_the_retrieved_documents_in_the_prompt(engine: Engine) -> None:
    result = engine.generate("ana", "tomato pasta", strategy="rag", k=2, generation=SHORT)
    assert result.provenance.documents == ["a1"]  # the only match; nothing of raj's
    assert "pasta with tomato sauce and basil" in result.prompt[0].content
    assert result.prompt[-1].content == "tomato pasta"
    assert "rust" not in prompt_text(result)
    stored = engine.store.outputs("ana")[-1]
    assert stored.output_id == result.output_id
    assert stored.provenance["documents"] == ["a1"] and stored.text == result.text


def test_rag_prompt_always_fits_the_budget(
    engine: Engine, tiny_model: TransformersTextModel
) -> None:
    result = engine.generate("ana", "battery screen", strategy="rag", k=4, generation=SHORT)
    assert "a3" in result.provenance.documents
    rendered = tiny_model.render(result.prompt)
    assert tiny_model.count_tokens(rendered) <= 200
    # The long document was cut, not dropped, and the instruction survived whole.
    assert "battery:" in prompt_text(result) and prompt_text(result).endswith("battery screen")


@pytest.mark.parametrize("strategy", ["none", "rag", "profile"])
def test_an_instruction_longer_than_the_budget_is_cut_to_fit(
    engine: Engine, tiny_model: TransformersTextModel, strategy: str
) -> None:
    engine.store.add([User(user_id="ana", profile={"job": "chef " * 300})])  # long attributes
    instruction = "tell me about the battery and the screen " * 60
    result = engine.generate("ana", instruction, strategy=strategy, k=4, generation=SHORT)
    assert tiny_model.count_tokens(tiny_model.render(result.prompt)) <= 200
    # Cut at the end: the instruction's start is kept.
    assert result.prompt[-1].content.startswith("tell me about the battery")
    assert len(result.prompt[-1].content) < len(instruction)


def test_items_with_no_room_are_dropped_not_cut_to_nothing(
    engine: Engine, tiny_model: TransformersTextModel
) -> None:
    documents = engine.store.documents("ana")
    packed = pack_documents(documents, tiny_model, budget=2 * MIN_ITEM_TOKENS)
    assert len(packed.used) == 2
    assert pack_documents(documents, tiny_model, budget=MIN_ITEM_TOKENS - 1).used == []


def test_profile_summary_is_cached_and_refreshed_when_documents_change(engine: Engine) -> None:
    # The random model's 80-token summaries re-encode to ~120 tokens: give them room whole.
    engine.prompt_tokens = 400
    first = engine.generate("ana", "write a post", strategy="profile", generation=SHORT)
    summary = first.details["summary"]
    assert first.provenance.documents == ["a3", "a2", "a1"]  # newest first, all fit
    # The random model's words name nothing of ana's: grounding may cut every sentence.
    assert f"About them: {summary}" in first.prompt[0].content or summary == ""
    assert first.prompt[-1].content == FRAMINGS["author"].request.format(instruction="write a post")
    assert "job: chef" in prompt_text(first)
    assert engine.store.row_counts("ana")["summaries"] == 1
    again = engine.generate("ana", "another post", strategy="profile", generation=SHORT)
    assert again.details["summary"] == summary  # the cached one
    assert engine.store.row_counts("ana")["summaries"] == 1
    engine.store.add(
        [Document(user_id="ana", doc_id="a4", text="new risotto recipe", time=datetime(2024, 4, 1))]
    )
    refreshed = engine.generate("ana", "write a post", strategy="profile", generation=SHORT)
    assert refreshed.provenance.documents[0] == "a4"
    # The summary was written again from the new documents, replacing the old one.
    assert engine.store.row_counts("ana")["summaries"] == 1


def test_generate_many_batches_users_and_strategies(engine: Engine) -> None:
    requests = [
        TextRequest("ana", "battery", strategy="rag"),
        TextRequest("raj", "battery", strategy="rag"),
        TextRequest("raj", "battery", strategy="none"),
        TextRequest("ana", "battery", strategy="profile"),
    ]
    results = engine.generate_many(requests, SHORT, batch_size=3)
    assert [(r.user_id, r.strategy) for r in results] == [(q.user_id, q.strategy) for q in requests]
    assert results[0].provenance.documents == ["a3"] and results[1].provenance.documents == ["r1"]
    for result in results:  # one user's documents never reach another user's prompt
        own = {d.doc_id for d in engine.store.documents(result.user_id)}
        assert set(result.provenance.documents) <= own


def test_bad_requests_fail_before_any_model_runs(store: StoreType, tmp_path: Path) -> None:
    engine = Engine(
        store, text_model=lambda: pytest.fail("loaded a model"), embedder=lambda: pytest.fail("x")
    )
    with pytest.raises(ValueError, match="unknown text strategy 'magic'"):
        engine.generate("ana", "x", strategy="magic")
    with pytest.raises(KeyError, match="no user 'ghost'"):
        engine.generate("ghost", "x")


def test_rag_says_who_the_user_is_and_falls_back_to_their_recent_documents(
    engine: Engine,
) -> None:
    engine.prompt_tokens = 600  # the tiny tokenizer spends a token per byte on the frame
    # "Write a short bio" shares no word with ana's posts: BM25 finds nothing above its floor.
    assert engine.search("ana", "Write a short bio", k=2) == []
    result = engine.generate("ana", "Write a short bio", strategy="rag", k=2, generation=SHORT)
    assert result.provenance.documents == ["a3", "a2"]  # her two most recent documents
    assert any("most recent documents instead" in note for note in result.provenance.notes)
    system = result.prompt[0].content
    assert "- job: chef" in system and "lemon tart with a buttery crust" in system
    assert "ghostwrite" in system and '"Write a short bio"' in result.prompt[-1].content
    # A match keeps the retrieved documents, with the attributes, and no fallback note.
    matched = engine.generate("ana", "lemon tart", strategy="rag", k=2, generation=SHORT)
    assert matched.provenance.documents == ["a2"] and matched.provenance.notes == []
    assert "- job: chef" in matched.prompt[0].content


def test_rag_without_documents_still_carries_the_profile(engine: Engine) -> None:
    engine.prompt_tokens = 600  # the tiny tokenizer spends a token per byte on the frame
    engine.store.add([User(user_id="kim", profile={"city": "Seoul"})])
    result = engine.generate("kim", "Write a short bio", strategy="rag", generation=SHORT)
    assert result.provenance.documents == [] and "- city: Seoul" in result.prompt[0].content


def test_rag_frames_the_prompt_by_whom_the_model_writes_as_or_for(engine: Engine) -> None:
    engine.prompt_tokens = 400
    author = FRAMINGS["author"].opening
    assistant = FRAMINGS["assistant"].opening
    own = engine.generate("ana", "Write a post about lemon tart", k=2, generation=SHORT)
    asked = engine.generate("ana", "What should I bake for lemon tart fans?", generation=SHORT)
    for result, opening, frame in ((own, author, "author"), (asked, assistant, "assistant")):
        assert result.details["frame"] == frame
        assert result.prompt[0].content.startswith(opening)
        asked = FRAMINGS[frame].request.format(instruction=result.prompt[-1].content)
        # The author frame asks for the text as a task done for the person; the assistant
        # frame passes the question as it came.
        assert (result.prompt[-1].content == asked) == (frame == "assistant")
        assert "lemon tart with a buttery crust" in result.prompt[0].content
    # The request may name its frame; profile frames its prompt the same way.
    request = TextRequest("ana", "Write a post about lemon tart", frame="assistant")
    named = engine.generate(request, generation=SHORT)
    assert named.details["frame"] == "assistant" and named.prompt[0].content.startswith(assistant)
    profiled = engine.generate(
        TextRequest("ana", "Suggest a dessert", strategy="profile"), generation=SHORT
    )
    assert profiled.details["frame"] == "assistant"
    assert profiled.prompt[0].content.startswith(assistant)


def test_the_voice_frame_makes_the_model_the_user_with_the_instruction_as_given(
    engine: Engine,
) -> None:
    """``voice``, for small models: "you" are the user, the instruction goes in unchanged,
    and no closing line follows the texts for the model to echo."""
    engine.prompt_tokens = 400
    voice = FRAMINGS["voice"]
    for strategy in ("rag", "profile"):
        request = TextRequest("ana", "Write a short bio", strategy=strategy, frame="voice")
        result = engine.generate(request, generation=SHORT)
        system = result.prompt[0].content
        assert result.details["frame"] == "voice" and system.startswith(voice.opening)
        assert result.prompt[-1].content == "Write a short bio"
        assert FRAMINGS["author"].closing not in system and "they" not in system.lower()
        if strategy == "rag":
            assert "Texts you wrote (" in system and "Who you are:" in system


def test_an_unknown_frame_is_refused_before_any_model_loads(
    store: SQLiteStore, engine: Engine
) -> None:
    def refuse() -> None:
        pytest.fail("no model may load for a refused request")

    lazy = Engine(store, refuse, embedder=refuse)
    with pytest.raises(InvalidRequest, match="frame must be one of author, assistant, voice, auto"):
        lazy.check(TextRequest("ana", "Write a short bio", frame="poet"))


@pytest.mark.parametrize(
    ("instruction", "frame"),
    [
        ("Write a short bio.", "author"),
        ("Write a short blog post about your week.", "author"),
        ("Please, draft my bio for the conference", "author"),
        ("Generate a headline for the following article: rain in Rome", "author"),
        ("Paraphrase the following tweet: coffee first", "author"),
        ("Describe yourself in three words", "author"),
        ("Suggest hotels in Las Vegas", "assistant"),
        ("What should I cook tonight?", "assistant"),
        ("Write me a packing list for Iceland", "assistant"),
        ("Write a recipe for me with lentils", "assistant"),
        ("Can you write a poem about my dog?", "assistant"),
        ("Write a poem about autumn?", "assistant"),
        ("Which of these movies would I like: A) Up B) Heat", "assistant"),
    ],
)
def test_the_frame_is_chosen_from_the_instruction(instruction: str, frame: str) -> None:
    assert choose(instruction) == frame
