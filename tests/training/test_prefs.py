"""``pgen bench prefs`` on tiny files in the two real formats: loaders, per-user splits
whose test pairs never reach training, every method scored, a readable report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pgen.bench.prefs import (
    PrefsSettings,
    load_pairs,
    report,
    run_prefs,
    similar_cohorts,
    split_users,
)
from pgen.cli.main import main
from pgen.models.text import TransformersTextModel

from .test_dpo import TINY_DPO


def tldr_file(folder: Path) -> Path:
    rows = []
    for worker in ("w1", "w2", "w3"):
        for i in range(6):
            rows.append(
                {
                    "info": {"id": f"{worker}{i}", "post": f"post {i} about the battery"},
                    "summaries": [{"text": f"great battery {i}"}, {"text": f"poor screen {i}"}],
                    "choice": 0 if worker != "w3" else 1,
                    "worker": worker,
                }
            )
    path = folder / "comparisons-batch0.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows[:-1]) + "\n")  # w3 has 5
    return path


def test_loaders_read_both_formats_and_name_bad_lines(tmp_path: Path) -> None:
    pairs = load_pairs(tldr_file(tmp_path), max_prompt_chars=100)
    assert {u: len(p) for u, p in pairs.items()} == {"w1": 6, "w2": 6, "w3": 5}
    assert pairs["w3"][0].chosen == "poor screen 0" and "post 0" in pairs["w3"][0].prompt
    soups = tmp_path / "p.json"
    soups.write_text(
        json.dumps(
            [
                {
                    "prompt": "hi",
                    "chosen": "hey!",
                    "rejected": "go away",
                    "ground_truth_persona": "friendly",
                },
                {
                    "prompt": "hi",
                    "chosen": "what",
                    "rejected": "hello!",
                    "ground_truth_persona": "unfriendly",
                },
            ]
        )
    )
    assert sorted(load_pairs(soups, 100)) == ["persona0", "persona1"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"worker": "w"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected a TL;DR comparison"):
        load_pairs(bad, 100)


def test_every_method_scores_every_test_pair(tmp_path: Path, model: TransformersTextModel) -> None:
    config = PrefsSettings(users=2, train_pairs=3, test_pairs=2, dpo=replace(TINY_DPO, max_steps=1))
    path = tldr_file(tmp_path)
    splits = split_users(load_pairs(path, 1200), config)
    assert list(splits) == ["w1", "w2"]
    for train, test in splits.values():
        assert len(train) == 3 and len(test) == 2 and not set(train) & set(test)
    result = run_prefs(model, path, config)
    for method in ("longer", "base", "user", "cohort", "cohort-similar", "global"):
        assert {u: len(c) for u, c in result["correct"][method].items()} == {"w1": 2, "w2": 2}
    # Every chosen summary here is the longer one ("great battery i" vs "poor screen i").
    assert result["correct"]["longer"] == {"w1": [1.0, 1.0], "w2": [1.0, 1.0]}
    assert len(result["seconds"]["user"]) == 2 and len(result["seconds"]["global"]) == 1
    assert result["cohorts"]["w1"]["cohort"] == ["w2"]
    assert [u for u, _ in result["cohorts"]["w1"]["cohort-similar"]] == ["w2"]
    text = report(result, "tiny")
    assert "| user | " in text and "vs global" in text and "s of training per adapter" in text
    assert "| longer | " in text and "| cohort-similar | " in text and "similar w2 (" in text


def test_cohort_similar_profiles_come_from_train_pairs_only(tmp_path: Path) -> None:
    """w1 and w2 write about batteries, w3 about gardens in its train pairs but about
    batteries in its test pairs: those must not bring w3 nearer to w1."""
    config = PrefsSettings(users=3, train_pairs=4, test_pairs=2)

    def rows(w3_test: set[str]) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for worker in ("w1", "w2", "w3"):
            for i in range(6):
                battery = worker != "w3" or f"{i + 1}" in w3_test
                post, summary = (
                    ("my battery charge died", "battery charge died")
                    if battery
                    else ("my garden tomatoes", "tomatoes grew tall")
                )
                out.append(
                    {
                        "info": {"post": post},
                        "summaries": [{"text": summary}, {"text": "no"}],
                        "choice": 0,
                        "worker": worker,
                    }
                )
        return out

    path = tmp_path / "comparisons-topics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows(set())) + "\n")
    # The split depends on the pair count only: the same lines are w3's test pairs after
    # they are rewritten to be about batteries.
    test_lines = {p.feedback[0] for p in split_users(load_pairs(path, 1200), config)["w3"][1]}
    w3_test = {str(int(line) - 12) for line in test_lines}  # w3's rows follow 12 others
    path.write_text("\n".join(json.dumps(r) for r in rows(w3_test)) + "\n")
    splits = split_users(load_pairs(path, 1200), config)
    assert all("battery" in p.chosen for p in splits["w3"][1])
    assert not any("battery" in p.chosen for p in splits["w3"][0])
    near = dict(similar_cohorts(splits, 2, None)["w1"])
    assert list(near) == ["w2", "w3"] and near["w2"] > 0.99
    # Had the test pairs entered the profiles, w3 would be nearer to w1 than it is.
    leaky = {u: (train + test, test) for u, (train, test) in splits.items()}
    assert dict(similar_cohorts(leaky, 2, None)["w1"])["w3"] > near["w3"] + 0.1


def test_bench_prefs_command_needs_data(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "prefs"])
    assert "--data" in capsys.readouterr().err
