"""DPO from feedback: pairs from explicit choices and from thumbs, a real TRL run that
raises the held-out implicit reward margin, and bad feedback refused before any write."""

from __future__ import annotations

import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pgen.context import Feedback
from pgen.context.artifacts import pairs_fingerprint, read_meta
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.errors import InvalidRequest
from pgen.models.base import GenerationSettings
from pgen.models.embedding import SentenceEmbedder
from pgen.models.text import TransformersTextModel
from pgen.personalize import TextRequest, get_strategy
from pgen.training.cohorts import profile_texts, similar_users
from pgen.training.dpo import DpoSettings, train_user_dpo
from pgen.training.registry import TrainRequest
from pgen.training.text_lora import train_user_lora
from pgen.usermodel.preferences import FeedbackError, feedback_fingerprint, feedback_pairs

from .conftest import TINY_LORA, documents
from .test_text_lora import tools
from .test_train_cli import run

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
    prepared = get_strategy("text", "dpo").prepare([TextRequest("ann", "hi")], tools(store, model))
    assert prepared[0].adapter is not None and prepared[0].adapter.path == folder
    assert model.generate(
        [prepared[0].chat], GenerationSettings(max_new_tokens=4), [prepared[0].adapter]
    )  # type: ignore[list-item]
    store.add([Feedback(user_id="ann", feedback_id="late", prompt="p", chosen="a", rejected="b")])
    again = get_strategy("text", "dpo").prepare([TextRequest("ann", "hi")], tools(store, model))
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


@pytest.fixture(scope="module")
def minilm() -> SentenceEmbedder:
    return SentenceEmbedder()  # the bundled all-MiniLM-L6-v2, the configured default


def cohort_store(store: SQLiteStore) -> None:
    """ann has two pairs and writes about phone batteries; bob writes about batteries too,
    cy about cooking; dee has no documents (profiled by their pairs: batteries); eve writes
    about batteries but has no feedback (nothing to pool: never picked)."""
    store.add(documents("ann", "my phone battery drains fast", "the charger heats the battery"))
    store.add(documents("bob", "battery life of this phone is short", "charging the battery"))
    store.add(documents("cy", "a recipe for tomato soup", "baking bread with rye flour"))
    store.add(documents("eve", "phone battery and charger review", "battery drains quickly"))
    cooking = [
        Feedback(
            user_id="cy",
            feedback_id=f"cy-f{i}",
            prompt=f"how do I cook {dish}?",
            chosen=f"slowly, the {dish} needs time",
            rejected=f"just burn the {dish}",
        )
        for i, dish in enumerate(["soup", "bread", "rice", "stew", "pasta", "beans"])
    ]
    store.add(pairs("ann", 2) + pairs("bob", 6) + pairs("dee", 4) + cooking)


def test_similar_profiles_pick_the_users_on_the_same_topic(
    store: SQLiteStore, minilm: SentenceEmbedder
) -> None:
    cohort_store(store)
    for embedder in (minilm, None):  # the configured embedder, and TF-IDF without one
        picked = similar_users(store, "ann", 2, embedder)
        assert [u for u, _ in picked][:1] == ["bob"], embedder
        assert "eve" not in dict(similar_users(store, "ann", 5, embedder))
        assert picked[0][1] > dict(similar_users(store, "ann", 5, embedder))["cy"]
    assert profile_texts(store, "dee")[0] == "what about the battery?\ngreat battery, great"


def test_similar_cohort_through_the_engine_records_who_and_how_near(
    store: SQLiteStore, model: TransformersTextModel, minilm: SentenceEmbedder
) -> None:
    cohort_store(store)
    engine = Engine(store, model, minilm)
    with pytest.raises(ValueError, match=r"2 preference pairs.*--cohort similar:K"):
        engine.train(TrainRequest("ann", "dpo", settings=TINY_DPO))
    settings = replace(TINY_DPO, max_steps=1)
    result = engine.train(TrainRequest("ann", "dpo", cohort=("similar:1",), settings=settings))
    meta = result.meta
    assert meta["cohort"] == ["bob"] and meta["cohort_by"] == "similar"
    assert list(meta["cohort_similarity"]) == ["bob"] and 0 < meta["cohort_similarity"]["bob"] <= 1
    assert meta["cohort_space"] == minilm.model_id
    assert meta["cohort_pairs"] == 6 and meta["train_pairs"] == 8
    # Only the pooled user's pairs entered ann's adapter: bob's, never cy's or dee's.
    saved = read_meta(result.artifact)
    assert saved is not None
    own_and_bob = feedback_pairs(store, "ann") + feedback_pairs(store, "bob")
    assert saved.fingerprint == pairs_fingerprint(own_and_bob)
    assert feedback_fingerprint(store, "ann", saved) == saved.fingerprint
    # A named cohort stays named.
    named = engine.train(TrainRequest("ann", "dpo", cohort=("cy",), settings=settings)).meta
    assert named["cohort"] == ["cy"] and named["cohort_by"] == "named"
    assert "cohort_similarity" not in named


@pytest.mark.parametrize(
    ("cohort", "message"),
    [
        ("similar:x", "--cohort similar:x: K must be a positive whole number"),
        ("similar:0", "--cohort similar:0: K must be a positive whole number"),
        ("bob,similar:2", "name no users beside it"),
    ],
)
def test_bad_similar_cohort_is_a_one_line_error(
    tmp_path: Path,
    tiny_llama: Path,
    capsys: pytest.CaptureFixture[str],
    cohort: str,
    message: str,
) -> None:
    with SQLiteStore(tmp_path / "pgen.sqlite") as opened:
        cohort_store(opened)
    argv = ["train", "--user", "ann", "--method", "dpo", "--cohort", cohort]
    assert run(tmp_path, tiny_llama, *argv) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_train_cli_says_who_was_pooled(
    tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SQLiteStore(tmp_path / "pgen.sqlite") as opened:
        cohort_store(opened)
    argv = [
        "train",
        "--user",
        "ann",
        "--method",
        "dpo",
        "--cohort",
        "similar:1",
        "--max-steps",
        "1",
    ]
    assert run(tmp_path, tiny_llama, *argv) == 0
    out = capsys.readouterr().out
    assert "pooled 6 pairs of the 1 most similar profiles (cosine, all-MiniLM-L6-v2" in out
    assert "bob (0." in out
    with SQLiteStore(tmp_path / "pgen.sqlite") as opened:
        folder = opened.artifacts("ann")[("dpo", "default")]
        saved = read_meta(folder)
    assert saved is not None and saved.extra["cohort"] == ["bob"]


def test_too_few_pairs_is_refused_before_any_model_loads(store: SQLiteStore) -> None:
    def no_model() -> TransformersTextModel:
        raise AssertionError("a model was loaded for a request that must be refused")

    store.add(documents("ann", "x") + pairs("ann", 3))
    engine = Engine(store, no_model, no_model)  # type: ignore[arg-type]
    minimum = DpoSettings().min_pairs
    with pytest.raises(InvalidRequest, match=rf"3 preference pairs.*at least {minimum}"):
        engine.check(TrainRequest("ann", "dpo"))
    with pytest.raises(InvalidRequest, match="at least"):
        engine.train(TrainRequest("ann", "dpo"))
    store.add(documents("bob", "y") + pairs("bob", 0))
    with pytest.raises(InvalidRequest, match=r"\(0 from the cohort\)"):
        engine.check(TrainRequest("ann", "dpo", cohort=("bob",)))


def test_dpo_reports_progress_through_pgens_bar_not_trls_logs(
    store: SQLiteStore, model: TransformersTextModel, capfd: pytest.CaptureFixture[str]
) -> None:
    store.add(documents("ann", "x") + pairs("ann", 6))
    settings = replace(TINY_DPO, max_steps=2, progress=True, measure=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_user_dpo(store, "ann", model, settings)
    out, err = capfd.readouterr()
    assert "training dpo" in err and "2/2" in err  # pgen's bar, with the loss
    assert "loss=" in err
    assert "{'loss'" not in out + err and "'train_runtime'" not in out + err  # TRL's raw dicts
    third_party = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert third_party == []
