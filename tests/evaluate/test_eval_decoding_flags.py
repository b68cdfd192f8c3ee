"""``pgen bench text`` takes the decoding flags, keys its cache by them and records them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pgen.bench.text import Setting
from pgen.bench.text_plan import BenchPlan, cache_key
from pgen.cli.main import main
from pgen.evaluate.benchmarks import TaskData, TaskSpec
from pgen.evaluate.report import decoding_text
from pgen.models.base import GenerationSettings


def _bench(model: Path, data: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "--home",
            str(out.parent / "home"),
            "--text-model",
            str(model),
            "bench",
            "text",
            "--task",
            "amazon_review",
            "--data",
            str(data),
            "--out",
            str(out),
            "--strategy",
            "none",
            "--no-progress",
            "--max-new-tokens",
            "6",
            *extra,
        ]
    )


def test_decoding_flags_reach_the_model_and_every_result_file(
    tiny_llama: Path, amazon_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pgen.models.text import TransformersTextModel

    seen: list[GenerationSettings | None] = []
    real = TransformersTextModel.generate

    def spying(
        self: TransformersTextModel, chats: Any, config: Any = None, adapters: Any = None
    ) -> Any:
        seen.append(config)
        return real(self, chats, config, adapters)

    monkeypatch.setattr(TransformersTextModel, "generate", spying)
    out = tmp_path / "run"
    flags = ["--repetition-penalty", "1.2", "--no-repeat-ngram-size", "3"]
    assert _bench(tiny_llama, amazon_file, out, *flags) == 0
    assert seen and all(c == GenerationSettings(6, 0.0, 1.0, 1.2, 3, 0) for c in seen)
    results = json.loads((out / "metrics.json").read_text())
    decoding = results["record"]["settings"]["decoding"]
    assert decoding == {
        "max_new_tokens": 6,
        "temperature": 0.0,
        "top_p": 1.0,
        "repetition_penalty": 1.2,
        "no_repeat_ngram_size": 3,
        "seed": 0,
        "no_copy_ngram_size": 0,
    }
    predictions = json.loads((out / "predictions" / "none.json").read_text())
    assert predictions["record"]["settings"]["decoding"] == decoding
    report = (out / "report.md").read_text()
    assert "greedy decoding, repetition penalty 1.2, no repeated 3-grams" in report

    # Other decoding, other answers: nothing is reused from the first run's cache.
    seen.clear()
    assert _bench(tiny_llama, amazon_file, out) == 0
    assert seen and all(c == GenerationSettings(max_new_tokens=6) for c in seen)
    plain = json.loads((out / "metrics.json").read_text())["record"]["settings"]["decoding"]
    assert plain["repetition_penalty"] == 1.0 and plain["no_repeat_ngram_size"] == 0
    assert "greedy decoding, at most 6 new tokens" in (out / "report.md").read_text()
    # The same flags again: all answers come from the cache, the model is not called.
    seen.clear()
    assert _bench(tiny_llama, amazon_file, out, *flags) == 0
    assert seen == []


def test_bad_decoding_values_fail_before_any_model_loads(
    amazon_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "no-model-here"
    empty.mkdir()  # a folder without weights: loading it would fail with another message
    for flag, value, message in (
        ("--top-p", "0", "top_p in (0, 1]"),
        ("--temperature", "-1", "temperature must be >= 0"),
        ("--repetition-penalty", "0", "repetition_penalty must be > 0"),
        ("--no-repeat-ngram-size", "-2", "no_repeat_ngram_size >= 0"),
    ):
        assert _bench(empty, amazon_file, tmp_path / "run", flag, value) != 0
        assert message in capsys.readouterr().err, flag
    assert not (tmp_path / "run").exists()  # nothing written either


def test_cache_key_covers_every_decoding_setting() -> None:
    data = TaskData(TaskSpec("LaMP_4", "generation"), [], [], "abc")
    setting = Setting("none")
    base = cache_key(data, BenchPlan([], "smollm2", 16), setting)
    for change in (
        {"repetition_penalty": 1.2},
        {"no_repeat_ngram_size": 3},
        {"temperature": 0.7},
        {"top_p": 0.9},
        {"seed": 1},
    ):
        assert cache_key(data, BenchPlan([], "smollm2", 16, **change), setting) != base, change


def test_decoding_text() -> None:
    assert decoding_text({}, 32) == "greedy decoding, at most 32 new tokens"
    sampled = {"temperature": 0.7, "top_p": 0.9, "seed": 3, "repetition_penalty": 1.1}
    assert decoding_text(sampled, 8) == (
        "sampled at temperature 0.7, top-p 0.9, seed 3, repetition penalty 1.1, "
        "at most 8 new tokens"
    )


def test_which_default_applies_where(monkeypatch: pytest.MonkeyPatch) -> None:
    from pgen.config import Config, load_config

    # pgen generate / serve / Engine.open: the measured default (docs/benchmarks.md).
    assert Config().generation == GenerationSettings(max_new_tokens=128, no_repeat_ngram_size=4)
    # Benchmarks and a bare GenerationSettings: plain greedy, nothing banned.
    assert GenerationSettings().no_repeat_ngram_size == 0
    assert BenchPlan([], "smollm2", 16).generation() == GenerationSettings(max_new_tokens=16)
    monkeypatch.setenv("PGEN_NO_REPEAT_NGRAM_SIZE", "0")
    monkeypatch.setenv("PGEN_REPETITION_PENALTY", "1.1")
    settings = load_config().generation
    assert (settings.no_repeat_ngram_size, settings.repetition_penalty) == (0, 1.1)
