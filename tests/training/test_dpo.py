"""DPO from feedback: pairs from explicit choices and from thumbs, a real TRL run that
raises the held-out implicit reward margin, and bad feedback refused before any write."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pgen.context import Feedback
from pgen.context.artifacts import read_meta
from pgen.context.store import SQLiteStore
from pgen.models.base import GenerationConfig
from pgen.models.text import TransformersTextModel
from pgen.personalize import Request, get_strategy
from pgen.training.dpo import DpoSettings, FeedbackError, feedback_pairs, train_user_dpo
from pgen.training.text_lora import train_user_lora

from .conftest import TINY_LORA, documents
from .test_text_lora import tools

TOPICS = ["battery", "screen", "sound", "price", "case", "charger", "cable", "box", "app", "fan"]
TINY_DPO = DpoSettings(
    beta=0.1, epochs=4, learning_rate=1e-2, batch_size=4, holdout=0.3, progress=False,
    lora=replace(TINY_LORA, dropout=0.0),
)  # fmt: skip


def pairs(user_id: str, count: int = 10) -> list[Feedback]:
    """Synthetic preferences with one consistent taste: praise chosen over complaint."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Feedback(
            user_id=user_id,
            feedback_id=f"{user_id}-f{i}",
            prompt=f"what about the {topic}?",
            chosen=f"great {topic}, great",
            rejected=f"poor {topic}, would not buy again",
            time=start + timedelta(days=i),
        )
        for i, topic in enumerate(TOPICS[:count])
    ]


def test_dpo_raises_the_held_out_margin(store: SQLiteStore, model: TransformersTextModel) -> None:
    store.add(pairs("ann"))
    folder = train_user_dpo(store, "ann", model, TINY_DPO)
    meta = read_meta(folder)
    assert meta is not None and meta.kind == "dpo" and meta.user_id == "ann"
    extra = meta.extra
    assert extra["measured_on"] == "held-out pairs" and extra["before"]["pairs"] == 3
    assert extra["train_pairs"] == 7 and extra["started_from"] == "fresh lora"
    # A fresh LoRA starts equal to the reference (B = 0): every margin is zero.
    assert extra["before"]["margin"] == pytest.approx(0, abs=1e-6)
    assert extra["before"]["accuracy"] == 0
    assert extra["after"]["margin"] > 0.05 and extra["after"]["accuracy"] == 1.0
    assert (folder / "adapter_config.json").is_file()

    # The dpo strategy applies it; generation runs with it.
    prepared = get_strategy("text", "dpo").prepare([Request("ann", "hi")], tools(store, model))
    assert prepared[0].adapter is not None and prepared[0].adapter.path == folder
    assert model.generate(
        [prepared[0].chat], GenerationConfig(max_new_tokens=4), [prepared[0].adapter]
    )  # type: ignore[list-item]
    store.add([Feedback(user_id="ann", feedback_id="late", prompt="p", chosen="a", rejected="b")])
    again = get_strategy("text", "dpo").prepare([Request("ann", "hi")], tools(store, model))
    assert any("feedback changed" in note for note in again[0].provenance.notes)


def test_dpo_starts_from_the_users_lora_and_pools_a_cohort(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    store.add(documents("ann", "the battery lasts long", "great sound"))
    train_user_lora(store, "ann", model, TINY_LORA)
    store.add(pairs("ann", 2) + pairs("bob", 6))
    with pytest.raises(ValueError, match=r"2 preference pairs.*--cohort"):
        train_user_dpo(store, "ann", model, TINY_DPO)
    settings = replace(TINY_DPO, cohort=("bob",), max_steps=1)
    meta = read_meta(train_user_dpo(store, "ann", model, settings))
    assert meta is not None
    assert meta.extra["started_from"] == "lora"
    assert meta.extra["cohort"] == ["bob"] and meta.extra["cohort_pairs"] == 6
    assert meta.extra["measured_on"].startswith("training pairs")


def test_thumbs_on_outputs_of_one_instruction_make_pairs(store: SQLiteStore) -> None:
    store.add(documents("ann", "x"))
    good = store.save_output("ann", "describe it", "none", "lovely", {})
    bad = store.save_output("ann", "describe it", "none", "awful", {})
    other = store.save_output("ann", "something else", "none", "meh", {})
    store.add(
        [
            Feedback(user_id="ann", feedback_id="1", output_id=good.output_id, thumbs=1),
            Feedback(user_id="ann", feedback_id="2", output_id=bad.output_id, thumbs=-1),
            Feedback(user_id="ann", feedback_id="3", output_id=other.output_id, thumbs=-1),
        ]
    )
    (pair,) = feedback_pairs(store, "ann")
    assert (pair.prompt, pair.chosen, pair.rejected) == ("describe it", "lovely", "awful")
    assert pair.feedback == ("1", "2")


@pytest.mark.parametrize("case", ["unknown output", "another user's output"])
def test_bad_feedback_is_a_clear_error_and_writes_nothing(
    store: SQLiteStore, model: TransformersTextModel, case: str
) -> None:
    store.add(pairs("ann") + documents("bob", "their review"))
    theirs = store.save_output("bob", "describe it", "none", "theirs", {})
    output_id = "nope" if case == "unknown output" else theirs.output_id
    store.add([Feedback(user_id="ann", feedback_id="bad", output_id=output_id, thumbs=1)])
    with pytest.raises(
        FeedbackError, match=f"feedback 'bad' of user 'ann' names output '{output_id}'"
    ):
        train_user_dpo(store, "ann", model, TINY_DPO)
    assert store.artifacts("ann") == {}
