"""The benchmarks' per-user adapters train on the runner asked for (``--runner``), and the
runner changes nothing: a tiny ``bench prefs`` inline and on a real local Ray trains the
same adapters (metadata, data fingerprints, settings) and scores the same."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pgen.bench.prefs import PrefsSettings, run_prefs
from pgen.bench.prefs_adapters import rounds
from pgen.bench.training import BenchTraining
from pgen.config import Config
from pgen.factory import build_text_model
from pgen.run.ray_runner import RayRunner

from .test_dpo import TINY_DPO
from .test_prefs import tldr_file


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
    sent: list[list[str]] = []
    fan_out = RayRunner.fan_out

    def spy(self: RayRunner, requests: Any, *args: Any) -> dict[str, int]:
        sent.append([r.user_id for r in requests])
        return fan_out(self, requests, *args)

    monkeypatch.setattr(RayRunner, "fan_out", spy)
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
