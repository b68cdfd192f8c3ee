"""``pgen bench text --strategy none,lora``: each question-user's adapter trained on that
user's profile only before generating, its cost in the run's meta."""

from __future__ import annotations

import json
from pathlib import Path

from pgen.cli.main import main

AMAZON = Path(__file__).resolve().parents[1] / "evaluate" / "data" / "amazon_5core_sample.json"


def test_bench_text_trains_one_lora_per_user(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["--home", str(tmp_path / "home"), "--text-model", str(tiny_llama), "bench", "text"]
    argv += ["--task", "amazon_rating", "--data", str(AMAZON), "--out", str(out), "--limit", "2"]
    argv += ["--strategy", "none,lora,lora+rag", "--max-new-tokens", "2", "--no-progress"]
    assert main(argv) == 0
    results = json.loads((out / "metrics.json").read_text())
    meta = results["record"]["settings"]  # what produced the run
    assert meta["lora_users_trained"] >= 1 and meta["lora_training_seconds_per_user"] > 0
    assert set(results["scores"]["systems"]) >= {"lora", "lora+rag-bm25-k1"}
    choice = [*argv, "--answers", "choice"]
    choice[choice.index(str(out))] = str(tmp_path / "choice")
    assert main(choice) == 0  # choice scores go through each user's adapter
    rows = [json.loads(line) for line in (tmp_path / "choice" / "cache.jsonl").open()]
    scores = {(r["setting"], r["id"]): r["label_logprobs"] for r in rows}
    examples = {example for setting, example in scores if setting == "none"}
    assert examples and all(
        scores[("lora", e)] != scores[("none", e)] for e in examples
    )  # the adapter changed every question's label scores, not the base model's
