"""``pgen bench rspg`` end to end on a tiny model: outcomes are computed once and cached,
the selector is trained and installed, and rag with retriever rspg on the held-out users
builds exactly the prompts of the choices it reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pgen.bench.rspg import OUTCOMES_FILE, OutcomeCache, Split, outcomes, request_for
from pgen.bench.rspg_report import RspgPlan, run_rspg, table
from pgen.context import Document
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.evaluate.benchmarks import Example, TaskSpec
from pgen.models.embedding import SentenceEmbedder
from pgen.models.text import TransformersTextModel
from pgen.personalize import TextRequest
from pgen.usermodel.selector import Choice, choice_grid

TOPICS = ["battery and screen", "sound and battery", "price and delivery", "the colour"]


def example(n: int) -> Example:
    user = f"t/u{n}"
    profile = tuple(
        Document(user_id=user, doc_id=f"d{j}", text=f"review {j}: great {TOPICS[(n + j) % 4]}")
        for j in range(3)
    )
    gold = f"the {TOPICS[n % 4]} is great"
    return Example(f"q{n}", user, f"write a review about {TOPICS[n % 4]}", gold, profile)


@pytest.fixture
def engine(tmp_path: Path, tiny_llama: Path) -> Engine:
    model = TransformersTextModel(str(tiny_llama), name="tiny-llama")
    return Engine(SQLiteStore(tmp_path / "s.sqlite"), model, SentenceEmbedder(), prompt_tokens=600)


def test_bench_rspg_trains_installs_and_compares_on_held_out_users(
    engine: Engine, tmp_path: Path
) -> None:
    spec = TaskSpec("t", "generation")
    split = Split("t", spec, [example(n) for n in range(12)], [example(n) for n in range(12, 16)])
    choices = choice_grid(["none", "bm25", "recency"], [1, 2])
    plan = RspgPlan(choices=choices, out=tmp_path / "run", progress=False)
    results = run_rspg(engine, [split], plan)
    task = results["tasks"]["t"]
    assert task["train"] == 12 and task["test"] == 4
    assert sum(task["picks"].values()) == 4
    assert task["best_single"] in [c.name for c in choices]
    assert task["oracle"] >= max(task["per_choice"].values())
    # The same fit without the task features, realized on the same held-out outcomes.
    plain = task["without_task_features_vs_best"]
    assert plain["baseline"] == task["rspg_vs_best"]["baseline"]
    assert min(task["per_choice"].values()) <= plain["system"] <= task["oracle"]
    # rag with retriever rspg builds the prompt of the choice it reports: its outcome is
    # that choice's cached value (no new forward pass).
    cache = OutcomeCache(tmp_path / "run" / OUTCOMES_FILE)
    lines = len(cache.values)
    for ex in split.test:
        plan_rspg = engine.prepare(
            [TextRequest(ex.user_id, ex.instruction, "rag", retriever="rspg")]
        )[0]
        chosen = plan_rspg.details["selected"]
        fixed = engine.prepare([request_for(ex, Choice(chosen["retriever"], chosen["k"]))])[0]
        assert plan_rspg.chat == fixed.chat
    again = outcomes(engine, split.test, choices, cache, progress=False)
    assert cache.computed == 0 and len(cache.values) == lines  # all from the cache
    assert np.isfinite(again.values).all() and (again.values < 0).all()
    assert "| t | 12 / 4 |" in table(results)
    assert (tmp_path / "run" / "selector" / "selector.json").is_file()


def test_the_none_choice_and_one_document_choices_differ_in_the_prompt(engine: Engine) -> None:
    from pgen.bench.rspg import fill_store

    ex = example(0)
    fill_store(engine, [Split("t", TaskSpec("t", "generation"), [ex], [])])
    none, one = engine.prepare(
        [request_for(ex, Choice("none", 0)), request_for(ex, Choice("bm25", 1))]
    )
    assert none.provenance.documents == [] and len(one.provenance.documents) == 1


def test_the_command_trains_on_lamp_and_installs_the_selector(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pgen.cli.main import main
    from pgen.usermodel.selector import install_folder, load_selector
    from tests.conftest import shared_data

    lamp = shared_data("lamp-samples")
    store = tmp_path / "mine.sqlite"
    args = ["--store", str(store), "--home", str(tmp_path), "--text-model", str(tiny_llama)]
    out = tmp_path / "run"
    flags = ["--lamp", str(lamp), "--retriever", "none,bm25", "--k", "1", "--out", str(out)]
    assert main([*args, "bench", "rspg", *flags, "--install", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| LaMP_1 | 5 / 3 |" in printed and "| LaMP_2 | 4 / 3 |" in printed
    with SQLiteStore(store) as opened:
        selector, meta = load_selector(install_folder(opened))
    assert [c.name for c in selector.choices] == ["none", "bm25@1"]
    assert meta.extra["train_rows"] == 9 and "tiny" in meta.extra["signal"]


def test_the_real_splits_hold_users_out_whole() -> None:
    from pgen.bench.rspg import load_splits, locomo_split, prefeval_split
    from tests.conftest import shared_data

    prefeval = prefeval_split(shared_data("prefeval"), items=2, turns=3, test_topics=4)
    topic = {e.user_id.split("/")[1].rsplit("-", 1)[0] for e in prefeval.test}
    assert len(topic) == 4 and not topic & {
        e.user_id.split("/")[1].rsplit("-", 1)[0] for e in prefeval.train
    }
    first = prefeval.train[0]
    assert len(first.profile) == 1 + 2 * 3  # the stating turn, then 3 filler turns
    assert first.profile[0].kind == "chat" and first.profile[0].user_id == first.user_id
    locomo = locomo_split(shared_data("locomo") / "locomo10-first7.json", 5, 3)
    assert len({e.user_id for e in locomo.test}) == 3
    assert not {e.user_id for e in locomo.test} & {e.user_id for e in locomo.train}
    amazon = load_splits(None, shared_data("amazon-beauty") / "All_Beauty_5.json", 300, 0.3)[0]
    assert not {e.source_user for e in amazon.test} & {e.source_user for e in amazon.train}
    assert len(amazon.test) + len(amazon.train) == 137  # every reviewer with a history
