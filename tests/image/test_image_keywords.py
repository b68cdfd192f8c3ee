"""The PMG-style keywords strategy with a tiny real Llama (its words are noise: the tests
check what was asked, what was used and how the conditioning is composed)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from pgen.context import Interaction, Item, User
from pgen.context.sqlite import SQLiteStore
from pgen.models.base import TextModel
from pgen.models.image import DiffusersImageModel, ImageGenerationSettings, load_image_model
from pgen.models.text import load_text_model
from pgen.personalize.keywords import (
    KeywordsSettings,
    generate_keywords,
    keywords_chat,
    parse_keywords,
    plan_keywords,
    preference_items,
)

FAST = ImageGenerationSettings(steps=2, guidance_scale=2.0)


@pytest.fixture(scope="module")
def text_model(tiny_llama: Path) -> TextModel:
    return load_text_model(str(tiny_llama))


@pytest.fixture(scope="module")
def image_model(tiny_sd: Path) -> DiffusersImageModel:
    return load_image_model(str(tiny_sd), dtype="float32")


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    items = [
        Item(item_id="m1", title="Spirited Away", text="a girl in a spirit world bathhouse"),
        Item(item_id="m2", title="Blade Runner", text="neon noir city, rain " * 40),
        Item(item_id="m3", title="Amelie", text="whimsical paris cafe"),
        Item(item_id="m4", title="Saw", text="horror"),
    ]
    day = [datetime(2024, 1, d) for d in range(1, 6)]
    store.add(
        [
            *items,
            User(user_id="ana"),
            User(user_id="bob"),
            Interaction(user_id="ana", item_id="m1", rating=5, time=day[0]),
            Interaction(user_id="ana", item_id="m2", rating=4, time=day[1]),
            Interaction(user_id="ana", item_id="m4", rating=1, time=day[2]),
            Interaction(user_id="ana", item_id="m3", rating=5, time=day[3]),
            Interaction(user_id="bob", item_id="m4", rating=5, time=day[4]),
        ]
    )
    return store


def test_preference_items_are_the_users_own_newest_first(store: SQLiteStore) -> None:
    ids = [i.item_id for i in preference_items(store, "ana", KeywordsSettings())]
    assert ids == ["m3", "m4", "m2", "m1"]
    liked = KeywordsSettings(min_rating=3, max_items=2)
    assert [i.item_id for i in preference_items(store, "ana", liked)] == ["m3", "m2"]
    assert [i.item_id for i in preference_items(store, "bob", KeywordsSettings())] == ["m4"]


def test_keyword_prompt_shows_truncated_items(store: SQLiteStore, text_model: TextModel) -> None:
    config = KeywordsSettings(item_tokens=6, max_keywords=5)
    chat = keywords_chat(preference_items(store, "ana", config), text_model, config)
    user = chat[-1].content
    assert "- Blade Runner: " in user and "- Spirited Away: " in user
    blade = next(line for line in user.splitlines() if line.startswith("- Blade Runner"))
    assert text_model.count_tokens(blade.split(": ", 1)[1]) <= 6
    assert "up to 5 short keywords" in user


def test_parse_keywords_cleans_lists() -> None:
    reply = '1. Neon Noir\n- "pastel"; watercolor, watercolor, drawn to scenes full of quiet light, , moody.'
    # A part of more than five words is prose, not a keyword: dropped, not cut to a fragment.
    assert parse_keywords(reply, 10) == ["neon noir", "pastel", "watercolor", "moody"]
    assert parse_keywords(reply, 2) == ["neon noir", "pastel"]
    assert parse_keywords("  ", 3) == []


def test_plan_uses_the_text_model_and_records_items(
    store: SQLiteStore, text_model: TextModel
) -> None:
    config = KeywordsSettings(weight=0.4)
    plan = plan_keywords(store, "ana", "a poster of a city", text_model, config)
    assert plan.item_ids == ["m3", "m4", "m2", "m1"]
    assert plan.weight == 0.4
    # Whatever the random model wrote, the plan is its reply, parsed.
    reply = text_model.generate(
        [keywords_chat(preference_items(store, "ana", config), text_model, config)],
        config.generation,
    )[0]
    assert plan.keywords == parse_keywords(reply, config.max_keywords)
    assert plan.prompt == ", ".join(["a poster of a city", *plan.keywords])
    with pytest.raises(ValueError, match="between 0 and 1"):
        plan_keywords(store, "ana", "x", text_model, KeywordsSettings(weight=2))


def test_generation_blends_preference_into_the_conditioning(
    store: SQLiteStore, text_model: TextModel, image_model: DiffusersImageModel
) -> None:
    out = generate_keywords(
        store,
        "ana",
        "a poster of a city",
        text_model,
        image_model,
        FAST,
        KeywordsSettings(weight=0.5),
    )
    assert out.strategy == "keywords"
    assert out.provenance["keywords"]  # this seed's model writes at least one keyword
    assert out.provenance["items"] == ["m3", "m4", "m2", "m1"]
    assert (
        "m4"
        not in generate_keywords(
            store, "ana", "x", text_model, image_model, FAST, KeywordsSettings(min_rating=3)
        ).provenance["items"]
    )
    plain = image_model.generate(["a poster of a city"], FAST)[0]
    expected = image_model.generate_blended(
        "a poster of a city", out.provenance["preference_prompt"], 0.5, FAST
    )[0]
    np.testing.assert_allclose(np.asarray(out.images[0]), np.asarray(expected), atol=1)
    assert np.abs(np.asarray(out.images[0], float) - np.asarray(plain, float)).mean() > 0.1
    # Weight 0 is the instruction alone, whatever the keywords.
    zero = generate_keywords(
        store,
        "ana",
        "a poster of a city",
        text_model,
        image_model,
        FAST,
        KeywordsSettings(weight=0),
    )
    np.testing.assert_allclose(np.asarray(zero.images[0]), np.asarray(plain), atol=1)


def test_a_user_without_history_gets_the_plain_instruction(
    store: SQLiteStore, text_model: TextModel, image_model: DiffusersImageModel
) -> None:
    store.add([User(user_id="new")])
    out = generate_keywords(store, "new", "a cat", text_model, image_model, FAST)
    assert out.provenance["items"] == [] and out.provenance["keywords"] == []
    assert out.prompt == "a cat"
    plain = image_model.generate(["a cat"], FAST)[0]
    np.testing.assert_allclose(np.asarray(out.images[0]), np.asarray(plain), atol=1)
