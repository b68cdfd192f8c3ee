"""Choices: a pick among the assistant's options kept as a preference of its own (the offer
and the pick), from a remembered transcript and from the chat endpoint's path (the
assistant's last message given with the user's turn), and carried into later prompts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgen.components import TextRequest
from pgen.context import Document, User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.text import TransformersTextModel
from pgen.personalize.stated import HEADING
from pgen.run.conversation import turn_document
from pgen.usermodel.choices import (
    chosen_index,
    detected_choice,
    listed_options,
    offers_options,
    picks_option,
)

OFFER = (
    "Here are a few ideas for tonight:\n1. A horror movie marathon.\n"
    "2. A lighthearted romantic comedy.\n3. A war documentary."
)
PICK = "Thanks! I'll go with option 2. The other options seem too intense for me."
# Short enough for the tiny test model's prompt (512 tokens of a 400-word vocabulary).
SHORT_OFFER, SHORT_PICK = "Ideas:\n1. Horror.\n2. Romcom.", "Option 2."


@pytest.mark.parametrize(
    "text",
    [
        OFFER,
        "Some options: (1) a museum visit, (2) a river cruise.",
        "- hiking in the hills\n- a cooking class\n- a spa day",
        "You could take a cooking class, visit the museum, or go to a jazz bar.",
        "You could consider Revlon. Maybelline is another option. Alternatively, Kjaer Weis.",
    ],
)
def test_lists_and_prose_alternatives_are_offers(text: str) -> None:
    assert offers_options(text)


@pytest.mark.parametrize(
    "text",
    [
        "Paris is the capital of France.",
        "Here is the function in Go:\n\nfunc fib(n int) int { return n }",
        "Step 1) install it.",  # one numbered item is not a choice between several
    ],
)
def test_answers_and_single_steps_are_no_offers(text: str) -> None:
    assert not offers_options(text)


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        (PICK, "I'll go with option 2."),
        ("The Lunchbox sounds good. The others might be too long.", "The Lunchbox sounds good."),
        ("Let's go with the romantic comedy.", "Let's go with the romantic comedy."),
        ("I think the second one would work best for me.", None),  # found by "the second one"
    ],
)
def test_picks_are_found_with_their_sentence(text: str, sentence: str | None) -> None:
    found = picks_option(text)
    assert found is not None
    assert text[found.start : found.end] == found.text
    if sentence is not None:
        assert found.text == sentence


@pytest.mark.parametrize(
    "text",
    [
        "That sounds good, thanks.",  # agreeing with anything is no pick
        "Can you tell me more about option 2?",  # a question
        "Thanks, number 3 was useful.",  # how an option went, not a pick
        "Now translate this into German.",
        "Write me a poem about the sea.",
    ],
)
def test_questions_and_new_requests_are_no_picks(text: str) -> None:
    assert picks_option(text) is None


def test_a_choice_record_holds_the_offer_and_the_pick() -> None:
    turn = Document(user_id="ana", doc_id="t2", kind="chat", text=PICK)
    choice = detected_choice(turn, OFFER)
    assert choice is not None
    assert choice.origin == "choice" and choice.source == "t2"
    # The option taken and the user's words, not the options turned down.
    assert choice.text == (
        f'Chose "A lighthearted romantic comedy." over 2 other options offered, saying: "{PICK}"'
    )
    assert choice.start is not None and PICK[choice.start : choice.end] == "I'll go with option 2."
    # A pick that cannot be placed in the offer keeps the whole offer (without its lead-in).
    prose = "You could watch a horror film, a comedy, or a documentary."
    unplaced = detected_choice(turn, prose)
    assert unplaced is not None and unplaced.text == f"When offered: {prose} They chose: {PICK}"
    # The same pick after an answer that offered nothing is not a choice.
    assert detected_choice(turn, "Paris is the capital of France.") is None
    # An offer as long as a pasted essay is clipped in the record.
    long_offer = OFFER + " " + "word " * 1000
    clipped = detected_choice(turn, long_offer)
    assert clipped is not None and len(clipped.text) < 1500


@pytest.fixture
def engine(store: SQLiteStore, tiny_model: TransformersTextModel) -> Engine:
    store.add([User(user_id="ana"), User(user_id="raj")])
    return Engine(store, tiny_model, lambda: pytest.fail("no dense retrieval"), prompt_tokens=400)


def _transcript(user: str, *said: tuple[str, str]) -> list[Document]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        turn_document(user, text, when=start + timedelta(seconds=i), speaker=role)
        for i, (role, text) in enumerate(said)
    ]


def test_a_remembered_transcript_keeps_the_choice_and_later_prompts_carry_it(
    engine: Engine,
) -> None:
    turns = _transcript(
        "ana",
        ("user", "What should I watch tonight?"),
        ("assistant", SHORT_OFFER),
        ("user", SHORT_PICK),
        ("assistant", "Enjoy the comedy!"),
        ("user", "Translate 'good night' into French."),  # after no offer: nothing
    )
    engine.remember("ana", turns)
    (choice,) = engine.preferences("ana")
    assert choice.origin == "choice" and choice.source == turns[2].doc_id
    assert choice.text == 'Chose "Romcom." over 1 other option offered, saying: "Option 2."'
    # Remembered again: the same record, not a second one.
    engine.remember("ana", turns)
    assert [p.preference_id for p in engine.preferences("ana")] == [choice.preference_id]
    assert engine.preferences("raj") == []
    # Many turns later, a question about films gets the choice in its prompt.
    later = _transcript("ana", *[("user", f"Fix my Go loop number {i}.") for i in range(30)])
    engine.remember("ana", later)
    request = TextRequest("ana", "Suggest a film for Friday.", "rag", 2, "bm25")
    (plan,) = engine.prepare([engine.check(request)])
    assert HEADING in plan.chat[0].content and 'Chose "Romcom."' in plan.chat[0].content
    assert plan.provenance.preferences == [choice.preference_id]


def test_a_transcript_given_in_parts_keeps_a_pick_whose_offer_came_before(
    engine: Engine,
) -> None:
    asked, offer, pick, thanks, again = _transcript(
        "ana",
        ("user", "What should I watch tonight?"),
        ("assistant", SHORT_OFFER),
        ("user", SHORT_PICK),
        ("assistant", "Enjoy!"),
        ("user", "Option 1."),
    )
    engine.remember("ana", [asked, offer])
    engine.remember("raj", [offer.model_copy(update={"user_id": "raj"})])
    engine.remember("ana", [pick, thanks])
    (choice,) = engine.preferences("ana")
    assert choice.source == pick.doc_id and "Romcom." in choice.text
    # The last stored turn is the assistant's "Enjoy!", which offers nothing; and a
    # user with no turn of their own gets nothing from raj's offer.
    engine.remember("ana", [again])
    assert len(engine.preferences("ana")) == 1
    (lone,) = _transcript("eve", ("user", "Option 2."))
    engine.remember("eve", [lone])
    assert engine.preferences("eve") == []


def test_the_endpoints_path_gives_the_assistants_last_message(engine: Engine) -> None:
    """The chat endpoint stores only the user's turn; the offer comes with it."""
    (pick,) = _transcript("raj", ("user", PICK))
    engine.remember("raj", [pick], offered=OFFER)
    (choice,) = engine.preferences("raj")
    assert choice.source == pick.doc_id and "romantic comedy" in choice.text
    # Without the offer, the same words are no choice; another user's offer is never used.
    (other,) = _transcript("ana", ("user", "I'll go with option 3."))
    engine.remember("ana", [other])
    assert engine.preferences("ana") == []
    mixed = [
        turn_document("raj", OFFER, speaker="assistant"),
        turn_document("ana", "Let's go with option 1.", speaker="user"),
    ]
    engine.remember("ana", mixed[1:])
    engine.store.add(mixed[:1])
    assert engine.preferences("ana") == []


@pytest.mark.parametrize(
    ("picking", "index"),
    [
        ("I'll go with option 3.", 2),
        ("Let's do the second one.", 1),
        ("The last one, please.", 2),
        ("I think I'll go with the war documentary.", 2),  # by its words
        ("I'm not in the mood for a horror movie marathon.", None),  # turned down, not taken
        ("I'll go with option 7.", None),  # no such option
    ],
)
def test_the_option_taken_is_found_by_number_ordinal_or_words(
    picking: str, index: int | None
) -> None:
    options = listed_options(OFFER)
    assert options == [
        "A horror movie marathon.",
        "A lighthearted romantic comedy.",
        "A war documentary.",
    ]
    assert chosen_index(picking, options) == index
