"""The profile summary ends at a sentence, and the prompt keeps its parts apart."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from pgen.context import Document, User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.base import AdapterRef, Chat, GenerationSettings, TextModel
from pgen.personalize.frames import FRAMINGS
from pgen.personalize.grounding import grounded, mentions, unsupported, vocabulary
from pgen.personalize.profile import SUMMARY_TOKENS, system_prompt, whole_sentences

CUT_SUMMARY = (
    "Ana writes about Italian cooking and desserts. Her tone is warm and casual, "
    "with short posts. She often mentions her grandmother's"
)


class CutReplies:
    """A TextModel whose summary replies stop mid-sentence, as one cut by max_new_tokens
    does; the post-processing under test is ours, not the model's."""

    name = "cut-replies"
    context_length = 2048

    def __init__(self, summary: str = "") -> None:
        self.summary = summary
        self.calls: list[tuple[list[Chat], GenerationSettings | None]] = []

    def generate(
        self,
        chats: list[Chat],
        config: GenerationSettings | None = None,
        adapters: Sequence[AdapterRef | None] | None = None,
    ) -> list[str]:
        self.calls.append((chats, config))
        summarizing = ["Here are texts written by one user" in c[-1].content for c in chats]
        summary = self.summary or CUT_SUMMARY
        return [summary if asked else "A new post." for asked in summarizing]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of whole words, spacing kept."""
        words = list(re.finditer(r"\S+", text))
        if len(words) <= max_tokens:
            return text
        return text[: words[max_tokens - 1].end()] if max_tokens > 0 else ""


@pytest.fixture
def engine(store: SQLiteStore) -> tuple[Engine, CutReplies]:
    store.add(
        [
            User(user_id="ana", profile={"job": "chef", "city": "Turin"}),
            Document(user_id="ana", doc_id="a1", text="Italian pasta, tomato and basil"),
            Document(user_id="ana", doc_id="a2", text="lemon tart with a buttery crust"),
        ]
    )
    model = CutReplies()
    assert isinstance(model, TextModel)
    return Engine(store, model, embedder=lambda: pytest.fail("unused")), model


def test_a_cut_summary_ends_at_its_last_whole_sentence(engine: tuple[Engine, CutReplies]) -> None:
    pgen, model = engine
    result = pgen.generate("ana", "write a post", strategy="profile")
    summary = result.details["summary"]
    assert summary == (
        "Ana writes about Italian cooking and desserts. Her tone is warm and casual, "
        "with short posts."
    )
    (_, settings), _ = model.calls
    assert settings is not None and settings.max_new_tokens == SUMMARY_TOKENS
    system = result.prompt[0].content
    author = FRAMINGS["author"]  # "write a post": the user's own text
    assert system == (
        f"{author.opening}\n\n"
        f"About them: {summary}\n\n"
        "Profile attributes:\n- city: Turin\n- job: chef\n\n"
        f"{author.closing}"
    )
    assert "grandmother" not in system
    # Cached as trimmed: the second request writes no new summary and reads the same one.
    again = pgen.generate("ana", "another post", strategy="profile")
    assert again.details["summary"] == summary
    assert len(model.calls) == 3  # summary, post, post


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("She likes tea. She writes", "She likes tea."),
        ("She likes tea! Often?", "She likes tea! Often?"),  # not cut: kept whole
        ('He says "hi." Then he', 'He says "hi."'),  # the closing quote stays
        ("Version 2.5 is out. It has", "Version 2.5 is out."),  # no end inside a number
        ("她喜欢喝茶。她经常写", "她喜欢喝茶。"),  # full-width marks need no space
        ("She likes tea and", "She likes tea and…"),  # no sentence end at all: marked cut
        ("  She likes tea.  ", "She likes tea."),
        ("", ""),
    ],
)
def test_whole_sentences(reply: str, expected: str) -> None:
    assert whole_sentences(reply) == expected


def test_the_prompt_parts_stand_alone() -> None:
    assistant = FRAMINGS["assistant"]
    assert system_prompt("", {"job": "chef"}, "assistant") == (
        f"{assistant.opening}\n\nProfile attributes:\n- job: chef\n\n{assistant.closing}"
    )
    assert "Profile attributes" not in system_prompt("Likes tea.", {})


def test_a_summary_sentence_naming_what_the_user_never_wrote_is_cut(store: SQLiteStore) -> None:
    store.add(
        [
            User(user_id="ana", profile={"job": "chef", "city": "Turin"}),
            Document(user_id="ana", doc_id="a1", text="Lemon tart for 8 people in my kitchen."),
        ]
    )
    invented = (
        "Ana is a chef in Turin who bakes lemon tarts for 8 people. "
        "She trained with Gordon Ramsay in 2015. Her posts are short and warm."
    )
    pgen = Engine(store, CutReplies(invented), embedder=lambda: pytest.fail("unused"))
    result = pgen.generate("ana", "write a post", strategy="profile")
    # Turin (an attribute) and 8 (in her post) are hers; Gordon Ramsay and 2015 are not.
    assert result.details["summary"] == (
        "Ana is a chef in Turin who bakes lemon tarts for 8 people. Her posts are short and warm."
    )
    assert "Ramsay" not in result.prompt[0].content


def test_mentions_are_names_and_numbers_looked_up_as_whole_words() -> None:
    text = "The blog of Mia. She ran 3.5 km in Paris, and I cheered! Paris again in 2021."
    assert mentions(text) == ["Mia", "3.5", "Paris", "2021"]  # a sentence's first word is not
    known = vocabulary(["mia ran 3.5 km", "city: Paris"])
    assert unsupported(text, known) == ["2021"]
    assert grounded(text, known) == (
        "The blog of Mia. She ran 3.5 km in Paris, and I cheered!",
        ["2021"],
    )
    assert unsupported("She met Parisa.", known) == ["Parisa"]  # whole words, not prefixes
