"""``pgen bench text --strategy dpo``: each question-user's dpo adapter trained on pairs
from that user's own profile (chosen: the user's label, rejected: the base model's greedy
answer), never the question's own; training seconds recorded; caps in the cache key."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pgen.bench.text_adapter_runs import AdapterCaps, check_no_leak
from pgen.bench.text_plan import BenchPlan, Setting, cache_key, store_path
from pgen.cli.main import main
from pgen.context.artifacts import read_meta
from pgen.evaluate.benchmarks import load_task
from pgen.factory import store_at
from pgen.training.examples import Example as TrainExample

QUESTION = "Which category does this article relate to among the following categories? "


def _lamp2(folder: Path) -> Path:
    """Two news questions; each profile's categories are its user's own."""
    profiles = {
        "q1": [("11", "politics", "The senate voted on the budget."), ("12", "sports", "A goal.")],
        "q2": [("21", "women", "A recipe for soup."), ("22", "travel", "Trains across Spain.")],
    }
    questions = [
        {
            "id": qid,
            "input": f"{QUESTION}Just answer with the category name. article: A new law {qid}.",
            "profile": [{"id": i, "category": c, "text": t, "title": ""} for i, c, t in items],
        }
        for qid, items in profiles.items()
    ]
    (folder / "LaMP_2_dev_questions.json").write_text(json.dumps(questions))
    golds = [{"id": "q1", "output": "politics"}, {"id": "q2", "output": "travel"}]
    (folder / "LaMP_2_dev_outputs.json").write_text(json.dumps({"task": "LaMP_2", "golds": golds}))
    return folder


def test_bench_text_dpo_trains_per_user_from_the_profile_only(
    tiny_llama: Path, tmp_path: Path
) -> None:
    data = _lamp2(tmp_path)
    out = tmp_path / "run"
    argv = ["--home", str(tmp_path / "home"), "--text-model", str(tiny_llama), "bench", "text"]
    argv += ["--task", "LaMP_2", "--data", str(data), "--out", str(out), "--no-progress"]
    argv += ["--strategy", "none,lora,dpo", "--max-new-tokens", "3", "--profile-items", "2"]
    argv += ["--train-max-length", "512"]
    assert main(argv) == 0
    results = json.loads((out / "metrics.json").read_text())
    record = results["record"]["settings"]
    assert record["adapter_caps"]["profile_items"] == 2
    assert set(record["dpo_training_seconds"]) == {"LaMP_2/q1", "LaMP_2/q2"}
    assert all(s > 0 for s in record["dpo_training_seconds"].values())
    assert set(record["lora_training_seconds"]) == {"LaMP_2/q1", "LaMP_2/q2"}
    assert set(results["scores"]["systems"]) >= {"lora", "dpo"}

    task = load_task("LaMP_2", data, "dev")
    store = store_at(store_path(out, task.data_hash))
    for example in task.examples:
        profile = {d.doc_id: d for d in example.profile}
        pairs = store.feedback(example.user_id)
        assert pairs and len(pairs) == record["dpo_pairs"][example.user_id]
        for pair in pairs:
            source = profile[pair.feedback_id.removeprefix("bench-dpo-")]  # this user's doc
            assert pair.chosen == source.fields["category"]
            assert source.text in (pair.prompt or "")
            assert pair.prompt != example.instruction
            assert pair.rejected != pair.chosen
        folder = store.artifacts(example.user_id)[("dpo", "default")]
        meta = read_meta(folder)
        assert meta is not None and meta.extra["started_from"] == "lora"
        assert meta.extra["train_pairs"] == len(pairs)
    store.close()

    rows = (out / "cache.jsonl").read_text().count("\n")
    assert main(argv) == 0  # resumed: every answer and every base answer is cached
    assert (out / "cache.jsonl").read_text().count("\n") == rows


def test_adapter_caps_key_the_cached_results(tmp_path: Path) -> None:
    task = load_task("LaMP_2", _lamp2(tmp_path), "dev")
    plan = BenchPlan(settings=[], model="m", max_new_tokens=3)
    other = replace(plan, adapter_caps=AdapterCaps(profile_items=4))
    for strategy in ("lora", "lora+rag", "dpo"):
        setting = Setting(strategy) if strategy != "lora+rag" else Setting(strategy, "bm25", 1)
        assert cache_key(task, plan, setting) != cache_key(task, other, setting)
    assert cache_key(task, plan, Setting("none")) == cache_key(task, other, Setting("none"))


def test_a_pair_holding_the_question_is_refused(tmp_path: Path) -> None:
    example = load_task("LaMP_2", _lamp2(tmp_path), "dev").examples[0]
    doc = example.profile[0].doc_id
    own = TrainExample(example.user_id, doc, "Which category? article: budget", "politics")
    check_no_leak(example, [(own, "sports")], generation=False)  # a shared label is fine
    asks = TrainExample(example.user_id, doc, example.instruction, "politics")
    with pytest.raises(RuntimeError, match="holds question"):
        check_no_leak(example, [(asks, "x")], generation=False)
    gold = TrainExample(example.user_id, doc, "Title?", example.gold)
    with pytest.raises(RuntimeError, match="holds question"):
        check_no_leak(example, [(gold, "x")], generation=True)
    foreign = TrainExample(example.user_id, "21", "Which category? article: soup", "women")
    with pytest.raises(RuntimeError, match="not in"):
        check_no_leak(example, [(foreign, "x")], generation=False)
