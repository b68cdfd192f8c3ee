"""No profile gives the answer away: Amazon variant duplicates, and the guard every task has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.context.formats.amazon import DUPLICATE, distinct_reviews, read_reviews
from pgen.evaluate.benchmarks import excluded_counts, load_task
from pgen.evaluate.benchmarks.amazon import SAME_AS_TARGET
from pgen.evaluate.benchmarks.leakage import REPEATS_GOLD, REPEATS_INPUT, repeats
from tests.evaluate.conftest import amazon_record

TARGET = "the cream dried my skin and smelled of old plastic"


@pytest.fixture
def five_core(tmp_path: Path) -> Path:
    """Reviews as the 5-core files hold them: each review repeated for every variant of the
    product (same reviewer, text and time, another asin)."""
    records = [
        amazon_record("A", "P1-red", 5.0, 100, "lovely soap, rich lather"),
        amazon_record("A", "P1-blue", 5.0, 100, "lovely soap, rich lather"),  # variant
        amazon_record("A", "P1-green", 5.0, 100, "lovely soap, rich lather"),  # variant
        amazon_record("A", "P2", 4.0, 200, "good shampoo for dry hair"),
        amazon_record("A", "P3", 1.0, 50, TARGET),  # the target's text, earlier
        amazon_record("A", "P4-small", 2.0, 300, TARGET),  # the target (latest)
        amazon_record("A", "P4-large", 2.0, 300, TARGET),  # its variant copy
        # B reviewed one product in three variants: one distinct review, no question.
        amazon_record("B", "P5-a", 3.0, 10, "fine brush"),
        amazon_record("B", "P5-b", 3.0, 10, "fine brush"),
        amazon_record("B", "P5-c", 3.0, 10, "fine brush"),
        amazon_record("C", "P6", 5.0, 10, "my favourite lip balm"),
        amazon_record("C", "P7", 4.0, 20, "a decent hand cream"),
    ]
    path = tmp_path / "All_Fake_5.json"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_variant_duplicates_are_one_review(five_core: Path) -> None:
    reviews = read_reviews(five_core, "raise").reviews
    kept, removed = distinct_reviews(reviews)
    assert removed == 5
    assert [r.asin for r in kept if r.reviewer == "A"] == ["P1-red", "P2", "P3", "P4-small"]


@pytest.mark.parametrize("task", ["amazon_review", "amazon_rating"])
def test_the_target_never_reaches_its_profile(five_core: Path, task: str) -> None:
    data = load_task(task, five_core)
    by_user = {e.source_user: e for e in data.examples}
    assert sorted(by_user) == ["A", "C"]
    a = by_user["A"]
    assert a.id == "A-P4-small"
    texts = [d.text for d in a.profile]
    assert texts == ["lovely soap, rich lather", "good shampoo for dry hair"]
    assert TARGET not in texts
    if task == "amazon_review":
        assert a.gold == TARGET
    else:
        assert a.gold == "2" and a.instruction.endswith(TARGET)
    # Counted per example: 2 variant copies of "lovely soap", 1 of the target; the earlier
    # review with the target's text.
    assert sorted(a.excluded) == sorted([DUPLICATE] * 3 + [SAME_AS_TARGET])
    assert excluded_counts(data.examples) == {DUPLICATE: 3, SAME_AS_TARGET: 1}
    assert data.skipped["user with fewer than 2 distinct reviews (no profile)"] == 1


def test_rec_data_reads_the_same_reviews(five_core: Path) -> None:
    from pgen.recommend.data import load_data

    data = load_data(five_core)
    # Recommendation keeps every line: each variant is an item the reviewer touched.
    assert len(data.interactions) == 12
    assert {i.item_id for i in data.items} >= {"P1-red", "P1-blue", "P4-large"}


def test_repeats_is_equal_or_rouge_l_above_point_nine() -> None:
    gold = "this serum works wonders on my dry skin every single morning and night"
    assert repeats(gold, gold) and repeats(f"  {gold.upper()} ", gold)
    one_word = gold.replace("wonders", "miracles")  # ROUGE-L F 12/13 = 0.92
    assert repeats(one_word, gold)
    two_words = one_word.replace("dry", "oily")  # ROUGE-L F 11/13 = 0.85
    assert not repeats(two_words, gold)
    assert not repeats("", gold) and not repeats("4", "5")
    assert repeats("周末", "周末")  # no ROUGE tokens: equal texts still count


def _lamp(folder: Path, task: str, questions: list[dict], golds: list[dict]) -> None:
    (folder / f"{task}_dev_questions.json").write_text(json.dumps(questions))
    (folder / f"{task}_dev_outputs.json").write_text(json.dumps({"task": task, "golds": golds}))


def test_lamp_profiles_lose_documents_that_repeat_the_answer(tmp_path: Path) -> None:
    # LaMP-4 (headline generation): the same article in the profile carries its headline.
    article = "the city council approved a new budget for public parks and libraries today"
    profile = [
        {"id": "p1", "text": article, "title": "Parks get money"},  # the article asked about
        {"id": "p2", "text": "a storm closed the harbour", "title": "Harbour shut"},
        {"id": "p3", "text": "schools reopen", "title": "Council Funds Parks"},  # title = gold
    ]
    question = {"id": "q1", "input": f"Generate a headline for the article: {article}"}
    _lamp(
        tmp_path,
        "LaMP_4",
        [{**question, "profile": profile}],
        [{"id": "q1", "output": "Council funds parks"}],
    )
    example = load_task("LaMP_4", tmp_path).examples[0]
    assert [d.doc_id for d in example.profile] == ["p2"]
    assert sorted(example.excluded) == sorted([REPEATS_GOLD, REPEATS_INPUT])
    # LaMP-3 (rating): the very review in the profile, with its score; a label-task gold
    # is a label, so a document that merely says "4" is not compared with it.
    review = "solid kettle, boils fast, a bit loud"
    profile = [
        {"id": "r1", "text": review, "score": "4"},
        {"id": "r2", "text": "4", "score": "5"},
    ]
    question = {"id": "q2", "input": f"What is the score of the following review? review: {review}"}
    _lamp(tmp_path, "LaMP_3", [{**question, "profile": profile}], [{"id": "q2", "output": "4"}])
    example = load_task("LaMP_3", tmp_path).examples[0]
    assert [d.doc_id for d in example.profile] == ["r2"] and example.excluded == (REPEATS_INPUT,)


def test_longlamp_near_copy_of_the_gold_is_removed(tmp_path: Path) -> None:
    gold = "we propose a sparse attention method that scales to very long documents"
    record = {
        "name": "Ada",
        "input": "Generate an abstract for the title: Sparse attention. items: sparse, long",
        "output": gold,
        "profile": [
            {"title": "Sparse attention", "abstract": gold.replace("very", "really")},
            {"title": "Older work", "abstract": "a study of recurrent networks on speech"},
        ],
    }
    path = tmp_path / "abstract_generation_user.json"
    path.write_text(json.dumps([record]))
    example = load_task("LongLaMP_abstract_generation", path).examples[0]
    assert [d.title for d in example.profile] == ["Older work"]
    assert example.excluded == (REPEATS_GOLD,)


def test_bench_report_counts_what_was_removed(
    tiny_llama: Path, five_core: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["--task", "amazon_review", "--data", str(five_core), "--out", str(out)]
    args += ["--strategy", "rag", "--k", "4", "--max-new-tokens", "2", "--no-progress"]
    assert (
        main(
            [
                "--home",
                str(tmp_path / "home"),
                "--text-model",
                str(tiny_llama),
                "bench",
                "text",
                *args,
            ]
        )
        == 0
    )
    results = json.loads((out / "metrics.json").read_text())
    assert results["meta"]["excluded"] == {DUPLICATE: 3, SAME_AS_TARGET: 1}
    report = (out / "report.md").read_text()
    assert f"3 × {DUPLICATE}" in report and f"1 × {SAME_AS_TARGET}" in report
    # What rag put in A's prompt: the two distinct earlier reviews, never the target.
    rows = [json.loads(line) for line in (out / "cache.jsonl").read_text().splitlines()]
    used = {r["id"]: r["provenance"] for r in rows if r["setting"] == "rag-bm25-k4"}
    assert sorted(used["A-P4-small"]) == ["P1-red@100", "P2@200"]
