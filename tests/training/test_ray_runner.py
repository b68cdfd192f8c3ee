"""Per-user training fanned out on a real local Ray (2 CPUs, loopback, no dashboard):
three tiny-model users trained, each adapter complete with its metadata; one user's
worker killed (-9) midway through its first attempt is retried and saves once, whole; a
user who cannot be trained is retried, then reported, and the others go on; a second
fan-out skips the fresh adapters."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgen.config import Config
from pgen.context.artifacts import ADAPTER_NAME, read_meta
from pgen.context.records import User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.run.fanout import FanOutProgress
from pgen.run.ray_runner import RayRunner
from pgen.training.registry import TrainRequest

from .conftest import TINY_LORA, documents
from .ray_engines import KillingOpener

ray = pytest.importorskip("ray")
USERS = ("ann", "bob", "cat")


def test_users_fan_out_on_ray_a_killed_worker_is_retried(
    local_ray: None, tmp_path: Path, tiny_llama: Path
) -> None:
    config = Config(home=tmp_path / "home", text_model=str(tiny_llama), threads=1)
    config.home.mkdir()
    with SQLiteStore(config.home / "pgen.sqlite") as store:
        for user in USERS:
            store.add(documents(user, f"{user} likes hiking", f"{user} writes short notes", "ok"))
        store.add([User(user_id="empty")])  # no documents to train on: fails each time
    marks = tmp_path / "marks"
    marks.mkdir()
    runner = RayRunner(KillingOpener(config, "bob", marks))
    seen: list[FanOutProgress] = []
    requests = [TrainRequest(u, "lora", settings=TINY_LORA) for u in (*USERS, "empty")]
    with Engine.open(config) as engine:
        done = engine.fan_out(requests, runner, retries=1, progress=lambda p: seen.append(p))
        assert sorted(r.user_id for r in done.results) == list(USERS)
        assert list(done.failed) == ["empty"] and done.attempts["empty"] == 2
        # bob's first attempt died midway (its worker killed); Ray ran the task again.
        assert sorted(p.name for p in marks.glob("bob.*")) == ["bob.1", "bob.2"]
        assert (marks / "bob.1").read_text() != (marks / "bob.2").read_text()  # another pid
        for result in done.results:
            folder = engine.store.artifacts(result.user_id)[("lora", ADAPTER_NAME)]
            meta = read_meta(folder)
            assert meta is not None and meta.user_id == result.user_id
            assert meta.base_model == engine.text_model.name and result.meta["steps"] == 6
            assert (folder / "adapter_config.json").is_file()
            # One folder of the user's, whole: nothing half-saved beside it.
            assert [p.name for p in folder.parent.iterdir()] == [folder.name]
        last = seen[-1]
        assert (last.done, last.failed, last.total) == (3, 1, 4) and last.eta_s == 0
        # Again: every adapter is fresh, nothing is trained (no task starts).
        again = engine.fan_out(requests[:3], runner, retries=1)
        assert (again.results, again.skipped) == ([], list(USERS))


def test_pgen_train_users_on_ray(
    local_ray: None, tmp_path: Path, tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pgen.cli.main import main

    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        for user in ("dee", "eve"):
            store.add(documents(user, f"{user} bakes bread", f"{user} swims at dawn"))
    argv = ["--home", str(tmp_path), "--text-model", str(tiny_llama), "--threads", "1"]
    argv += ["train", "--users", "all", "--runner", "ray", "--max-steps", "2"]
    assert main(argv) == 0  # joins the Ray this module started
    out = capsys.readouterr().out
    assert "2 trained, 0 failed, 0 fresh (skipped) of 2 users" in out
    assert "2 done, 0 failed, 0 fresh (skipped) of 2; ETA 0 s" in out
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        for user in ("dee", "eve"):
            meta = read_meta(store.artifacts(user)[("lora", ADAPTER_NAME)])
            assert meta is not None and meta.extra["steps"] == 2


def test_an_engine_with_a_ray_runner_trains_many_users_there(
    local_ray: None, tmp_path: Path, tiny_llama: Path
) -> None:
    """``Engine(runner=RayRunner(...)).train_many``: the requests go to Ray tasks (each
    opening its own engine), gathered two users to a task, not to this process."""
    from functools import partial

    config = Config(home=tmp_path / "home", text_model=str(tiny_llama), threads=1)
    config.home.mkdir()
    with SQLiteStore(config.home / "pgen.sqlite") as store:
        for user in ("fay", "gus"):
            store.add(documents(user, f"{user} paints boats", f"{user} reads maps"))
    runner = RayRunner(partial(Engine.open, config), group_size=2)
    with Engine.open(config, runner=runner) as engine:
        results = engine.train_many(
            [TrainRequest(u, "lora", settings=TINY_LORA) for u in ("fay", "gus")]
        )
        assert [r.user_id for r in results] == ["fay", "gus"]
        for result in results:
            meta = read_meta(engine.store.artifacts(result.user_id)[("lora", ADAPTER_NAME)])
            assert meta is not None and meta.user_id == result.user_id
            assert result.meta["steps"] > 0 and (result.artifact / "adapter_config.json").is_file()
        # Trained in Ray workers, not here: this process never loaded the text model.
        assert not engine._components._loaders["text"].loaded
