"""RSPG: the retriever selector learns from outcomes, round-trips as an artifact, is what
``rag`` uses with ``retriever="rspg"``, and holds no user's text."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from pgen.context import Document, User
from pgen.context.artifacts import ArtifactMeta
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.errors import InvalidRequest, StaleArtifact
from pgen.models.base import Embedder
from pgen.models.text import TransformersTextModel
from pgen.personalize import TextRequest
from pgen.training.rspg import fit_selector
from pgen.usermodel.selector import (
    FEATURES,
    SELECTOR_FILE,
    SELECTOR_KIND,
    TASK_FEATURES,
    Choice,
    LinearSelector,
    choice_grid,
    install_folder,
    load_selector,
    request_features,
    save_selector,
)

SECRET = "zorblaxian"  # a word only the user's documents hold


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[Choice]]:
    """Outcomes where bm25@4 wins when the query's words are known (feature
    ``known_share`` high) and dense@4 wins otherwise; none is always worst."""
    rng = np.random.default_rng(seed)
    choices = choice_grid(["none", "bm25", "dense"], [4])
    x = rng.normal(size=(n, len(FEATURES)))
    known = x[:, FEATURES.index("known_share")]
    y = np.stack([-2.0 + 0 * known, -1.0 + known, -1.0 - known], axis=1)
    return x, y + rng.normal(scale=0.05, size=y.shape), choices


def meta(base_model: str) -> ArtifactMeta:
    return ArtifactMeta(SELECTOR_KIND, "", SELECTOR_KIND, base_model, "f")


def test_selector_learns_which_retriever_wins_from_a_feature() -> None:
    x, y, choices = synthetic(200, seed=0)
    fit = fit_selector(x, y, choices, [f"u{n}" for n in range(len(x))])
    assert np.isfinite(fit.penalty)  # features earned their place over "always one choice"
    test_x, test_y, _ = synthetic(100, seed=1)
    picks = [c.name for c in fit.selector.choose(test_x)]
    known = test_x[:, FEATURES.index("known_share")]
    wanted = np.where(known > 0, "bm25@4", "dense@4")
    clear = np.abs(known) > 0.2  # away from the tie, where noise may flip it
    assert (np.array(picks)[clear] == wanted[clear]).all()
    # The selector beats the best single choice on held-out rows.
    realized = test_y[
        np.arange(len(test_y)), [choices.index(fit.selector.choose(r)[0]) for r in test_x]
    ]
    assert realized.mean() > test_y.mean(axis=0).max() + 0.3


def test_without_a_useful_feature_it_picks_the_best_single_choice() -> None:
    rng = np.random.default_rng(2)
    choices = choice_grid(["none", "bm25", "dense"], [1])
    x = rng.normal(size=(120, len(FEATURES)))
    y = np.array([-2.0, -1.0, -1.5]) + rng.normal(scale=0.3, size=(120, 3))
    fit = fit_selector(x, y, choices, [f"u{n % 40}" for n in range(120)])
    picks = {c.name for c in fit.selector.choose(rng.normal(size=(50, len(FEATURES))))}
    assert picks == {"bm25@1"}


def test_task_features_let_one_selector_pick_each_tasks_best_choice() -> None:
    """Two kinds of request (short chat turns, long reviews: ``doc_words`` tells them
    apart) whose best retriever differs, pooled in one training set: with the task
    features the selector picks each kind's best; without them, one choice for both."""
    rng = np.random.default_rng(4)
    choices = choice_grid(["bm25", "dense"], [4])
    x = rng.normal(size=(200, len(FEATURES)))
    chat = np.arange(200) % 2 == 0
    x[:, FEATURES.index("doc_words")] = np.where(chat, 2.5, 4.5) + rng.normal(0, 0.1, 200)
    y = np.where(chat[:, None], [-1.0, -1.4], [-1.2, -1.0]) + rng.normal(0, 0.05, (200, 2))
    groups = [f"u{n}" for n in range(200)]
    fit = fit_selector(x, y, choices, groups)
    picks = np.array([c.name for c in fit.selector.choose(x)])
    assert (picks[chat] == "bm25@4").all() and (picks[~chat] == "dense@4").all()
    kept = [n for n, name in enumerate(FEATURES) if name not in TASK_FEATURES]
    names = [FEATURES[n] for n in kept]
    plain = fit_selector(x[:, kept], y, choices, groups, names=names).selector
    assert len({c.name for c in plain.choose(x[:, kept])}) == 1
    assert plain.features == names


def test_selector_round_trips_and_bad_files_name_the_field(tmp_path: Path) -> None:
    x, y, choices = synthetic(60, seed=3)
    selector = fit_selector(x, y, choices, [str(n) for n in range(60)]).selector
    folder = save_selector(tmp_path / "sel", selector, meta("m"))
    loaded, read = load_selector(folder)
    assert read.kind == SELECTOR_KIND and read.base_model == "m"
    assert [c.name for c in loaded.choices] == ["none", "bm25@4", "dense@4"]
    np.testing.assert_allclose(loaded.scores(x), selector.scores(x))
    data = json.loads((folder / SELECTOR_FILE).read_text())
    data["weights"] = data["weights"][:-1]
    (folder / SELECTOR_FILE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"{SELECTOR_FILE}: field 'weights'"):
        load_selector(folder)
    data["version"] = 1  # a selector of the first feature set
    (folder / SELECTOR_FILE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="'version': expected 2, got 1: retrain it"):
        load_selector(folder)
    with pytest.raises(FileNotFoundError, match="no retriever selector"):
        load_selector(tmp_path / "nothing")


def fixed(choice: str) -> LinearSelector:
    """A selector that always picks ``choice`` (its bias), among a few."""
    choices = choice_grid(["none", "bm25", "recency"], [1, 2])
    width = len(FEATURES)
    bias = np.array([1.0 if c.name == choice else 0.0 for c in choices])
    return LinearSelector(
        choices,
        list(FEATURES),
        np.zeros(width),
        np.ones(width),
        np.zeros((len(choices), width)),
        bias,
    )


@pytest.fixture
def engine(store: SQLiteStore, tiny_model: TransformersTextModel, minilm: Embedder) -> Engine:
    store.add(
        [
            User(user_id="ana", profile={"job": "chef"}),
            Document(
                user_id="ana",
                doc_id="a1",
                text=f"{SECRET} pasta with basil",
                time=datetime(2024, 1, 1),
            ),
            Document(
                user_id="ana", doc_id="a2", text="lemon tart with crust", time=datetime(2024, 2, 1)
            ),
            Document(
                user_id="ana", doc_id="a3", text="a walk by the river", time=datetime(2024, 3, 1)
            ),
        ]
    )
    return Engine(store, tiny_model, minilm, prompt_tokens=600)


def test_rag_uses_the_retriever_and_k_the_selector_picks(engine: Engine, minilm: Embedder) -> None:
    save_selector(install_folder(engine.store), fixed("recency@2"), meta(minilm.model_id))
    # The assistant frame: the tiny model's 512-token context leaves room for two documents.
    request = TextRequest(
        "ana", "write about pasta", "rag", k=1, retriever="rspg", frame="assistant"
    )
    plan = engine.prepare([request])[0]
    assert plan.details["selected"] == {"by": "rspg", "retriever": "recency", "k": 2}
    assert plan.details["retriever"] == "recency"
    assert plan.provenance.documents == ["a3", "a2"]  # the two most recent, not bm25's a1
    assert plan.provenance.artifacts == ["selector/rspg"]


def test_a_selector_that_picks_none_puts_no_documents_in(engine: Engine, minilm: Embedder) -> None:
    save_selector(install_folder(engine.store), fixed("none"), meta(minilm.model_id))
    plan = engine.prepare([TextRequest("ana", "write about pasta", "rag", retriever="rspg")])[0]
    assert plan.provenance.documents == []  # no recent documents stand in
    assert plan.details["retriever"] == "none"
    assert "chef" in plan.chat[0].content  # the profile still frames the prompt


def test_a_selector_trained_with_another_embedder_is_refused(
    engine: Engine, minilm: Embedder
) -> None:
    with pytest.raises(InvalidRequest, match="no retriever selector"):  # none installed
        engine.prepare([TextRequest("ana", "pasta", "rag", retriever="rspg")])
    save_selector(install_folder(engine.store), fixed("bm25@1"), meta("another-model"))
    with pytest.raises(StaleArtifact, match="trained on another-model"):
        engine.prepare([TextRequest("ana", "pasta", "rag", retriever="rspg")])
    folder = save_selector(install_folder(engine.store), fixed("bm25@1"), meta(minilm.model_id))
    data = json.loads((folder / SELECTOR_FILE).read_text())
    (folder / SELECTOR_FILE).write_text(json.dumps({**data, "version": 1}))
    fresh = Engine(engine.store, engine.text_model, minilm, prompt_tokens=600)
    with pytest.raises(StaleArtifact, match="expected 2, got 1: retrain it"):
        fresh.prepare([TextRequest("ana", "pasta", "rag", retriever="rspg")])


def test_features_describe_the_request_and_the_saved_selector_holds_no_user_text(
    engine: Engine, minilm: Embedder, tmp_path: Path
) -> None:
    matching = request_features(engine.retrievers, "ana", f"{SECRET} pasta")
    unrelated = request_features(engine.retrievers, "ana", "quantum chromodynamics")
    at = FEATURES.index
    assert matching[at("profile_docs")] == pytest.approx(np.log1p(3))
    # The mean document length is the user's, whatever the query.
    assert matching[at("doc_words")] == unrelated[at("doc_words")] > 0
    asked = request_features(engine.retrievers, "ana", "what did I cook?")
    assert asked[at("question")] == 1.0 and matching[at("question")] == 0.0
    assert matching[at("known_share")] == 1.0 and unrelated[at("known_share")] == 0.0
    assert matching[at("bm25_top")] > 0 == unrelated[at("bm25_top")]
    assert matching[at("dense_top")] > unrelated[at("dense_top")]
    x = np.stack([matching, unrelated] * 10)
    y = np.tile([[-2.0, -1.0], [-1.0, -2.0]], (10, 1))
    choices = choice_grid(["none", "bm25"], [1])
    selector = fit_selector(x, y, choices, [str(n) for n in range(20)]).selector
    folder = save_selector(tmp_path / "sel", selector, meta(minilm.model_id))
    for path in folder.iterdir():
        assert SECRET not in path.read_text()
