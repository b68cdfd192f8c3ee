"""The benchmarks' per-user adapters train on the runner asked for (``--runner``), and the
runner changes nothing: a tiny ``bench prefs``, and a tiny ``bench text`` with lora and
dpo, inline and on a real local Ray train the same adapters (metadata, data fingerprints,
settings) and score the same."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pgen.bench.prefs import PrefsSettings, run_prefs
from pgen.bench.prefs_adapters import rounds
from pgen.bench.text_plan import store_path
from pgen.bench.training import BenchTraining
from pgen.cli.main import main
from pgen.config import Config
from pgen.context.artifacts import read_meta
from pgen.evaluate.benchmarks import load_task
from pgen.factory import build_text_model, store_at
from pgen.run.ray_runner import RayRunner

from .test_bench_text_dpo import _lamp2
from .test_dpo import TINY_DPO
from .test_prefs import tldr_file


def spy_on_ray(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The users of each fan-out handed to Ray, as it trains them."""
    sent: list[list[str]] = []
    fan_out = RayRunner.fan_out

    def spy(self: RayRunner, requests: Any, *args: Any) -> dict[str, int]:
        sent.append([r.user_id for r in requests])
        return fan_out(self, requests, *args)

    monkeypatch.setattr(RayRunner, "fan_out", spy)
    return sent


def test_prefs_trains_alike_inline_and_on_ray(
    local_ray: None, tmp_path: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(home=tmp_path / "home", text_model=str(tiny_llama), threads=1)
    model = build_text_model(config)
    settings = PrefsSettings(
        users=3, train_pairs=3, test_pairs=2, dpo=replace(TINY_DPO, max_steps=2)
    )
    data = tldr_file(tmp_path)
    inline = run_prefs(model, data, settings, training=BenchTraining(config=config))
    sent = spy_on_ray(monkeypatch)
    on_ray = run_prefs(model, data, settings, training=BenchTraining("ray", 1, config))
    # global (w1 over w2, w3), then each user's own, cohort and cohort-similar adapters
    # where their pairs differ: rounds of one adapter per user, every one sent to Ray.
    assert sorted(u for users in sent for u in users) == sorted(
        a["user"] for a in inline["adapters"]
    )
    assert all(len(users) == len(set(users)) for users in sent) and len(sent) > 1
    assert on_ray["adapters"] == inline["adapters"]
    assert {a["base_model"] for a in inline["adapters"]} == {model.name}
    assert len({(a["user"], a["fingerprint"]) for a in inline["adapters"]}) == len(
        inline["adapters"]
    )  # each adapter's own pairs: a pooled cohort changes the fingerprint
    for key in ("correct", "cohorts", "users"):
        assert on_ray[key] == inline[key]
    assert {m: len(v) for m, v in on_ray["seconds"].items()} == {
        m: len(v) for m, v in inline["seconds"].items()
    }


def _adapters(out: Path, data: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(user, kind) -> what the adapter's metadata says, less its creation time and seconds."""
    task = load_task("LaMP_2", data, "dev")
    found = {}
    store = store_at(store_path(out, task.data_hash))
    for example in task.examples:
        for (kind, _), folder in store.artifacts(example.user_id).items():
            meta = read_meta(folder)
            assert meta is not None
            extra = {k: v for k, v in meta.extra.items() if "seconds" not in k}
            found[(example.user_id, kind)] = {
                "base_model": meta.base_model,
                "fingerprint": meta.fingerprint,
                "settings": meta.settings,
                "extra": extra,
            }
    store.close()
    return found


def test_bench_text_trains_alike_inline_and_on_ray(
    local_ray: None, tmp_path: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _lamp2(tmp_path)
    argv = ["--home", str(tmp_path / "home"), "--text-model", str(tiny_llama), "--threads", "1"]
    argv += ["bench", "text", "--task", "LaMP_2", "--data", str(data), "--no-progress"]
    argv += ["--strategy", "none,lora,dpo", "--max-new-tokens", "3", "--profile-items", "2"]
    argv += ["--train-max-length", "512"]
    assert main([*argv, "--out", str(tmp_path / "inline")]) == 0
    sent = spy_on_ray(monkeypatch)
    assert main([*argv, "--out", str(tmp_path / "ray"), "--runner", "ray"]) == 0
    users = ["LaMP_2/q1", "LaMP_2/q2"]
    assert sent == [users, users]  # the loras, then the dpo adapters starting from them
    inline, on_ray = (_adapters(tmp_path / run, data) for run in ("inline", "ray"))
    assert sorted(inline) == [(u, k) for u in users for k in ("dpo", "lora")]
    assert on_ray == inline
    results = [
        json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("inline", "ray")
    ]
    assert results[1]["scores"] == results[0]["scores"]
    for run in results:
        assert (
            run["record"]["settings"]["dpo_pairs"] == results[0]["record"]["settings"]["dpo_pairs"]
        )
    assert results[1]["record"]["settings"]["adapter_training"]["runner"] == "ray"


def test_rounds_hold_one_adapter_per_user() -> None:
    from pgen.bench.prefs_adapters import Planned

    planned = [Planned("global", "a", ("b",)), Planned("user", "a", ()), Planned("user", "b", ())]
    assert [[p.method + ":" + p.user for p in r] for r in rounds(planned)] == [
        ["global:a", "user:b"],
        ["user:a"],
    ]


def test_bench_runner_refuses_threads_and_bad_counts() -> None:
    with pytest.raises(ValueError, match="inline, ray or ray:ADDRESS"):
        BenchTraining("threads:2").check()
    with pytest.raises(ValueError, match="batch-users must be at least 1"):
        BenchTraining(batch_users=0).check()
    with pytest.raises(ValueError, match="inline, threads:N, ray or ray:ADDRESS"):
        BenchTraining("slurm").check()
