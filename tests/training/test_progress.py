"""Training reports every optimizer step through ``TrainRequest.on_step`` (step, total, loss,
whose adapter) and pgen's own bar: one user alone (lora, task-lora, dpo), many gathered
(each user's steps to their own request's hook only), and ``pgen train`` on the terminal."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from pgen.context.sqlite import SQLiteStore
from pgen.models.text import TransformersTextModel
from pgen.run.training_service import TrainingService
from pgen.training.progress import TrainStep
from pgen.training.registry import TrainRequest
from pgen.training.stopping import TrainingCancelled

from .conftest import TINY_LORA, documents
from .test_dpo import TINY_DPO, pairs
from .test_text_lora import tools
from .test_train_cli import run


def service(store: SQLiteStore, model: TransformersTextModel) -> TrainingService:
    def no_embedder() -> None:
        raise AssertionError("no cohort by similarity here")

    return TrainingService(
        store,
        lambda: tools(store, model),
        no_embedder,  # type: ignore[arg-type]
        measure_effect=False,
    )


def assert_counted(seen: list[TrainStep], total: int, users: tuple[str, ...]) -> None:
    """Steps 1, 2, ... up to the total, each with a finite loss, all of ``users``."""
    assert [s.step for s in seen] == list(range(1, total + 1))
    assert {s.total for s in seen} == {total}
    assert all(math.isfinite(s.loss) and s.loss > 0 for s in seen)
    assert {s.users for s in seen} == {users}


@pytest.mark.parametrize("method", ["lora", "task-lora"])
def test_every_lora_step_is_told_with_its_loss(
    store: SQLiteStore, model: TransformersTextModel, method: str
) -> None:
    store.add(documents("ann", "the battery lasts long", "great sound", "bright screen"))
    store.add(documents("bob", "too heavy", "would not buy again"))
    seen: list[TrainStep] = []
    cohort = ("bob",) if method == "task-lora" else ()
    request = TrainRequest("ann", method, cohort=cohort, settings=TINY_LORA, on_step=seen.append)
    result = service(store, model).train([request])[0]
    assert_counted(seen, 6, ("ann", "bob") if cohort else ("ann",))
    if method == "lora":  # the losses told are the run's own
        assert seen[0].loss == result.meta["first_loss"]
        assert seen[-1].loss == result.meta["last_loss"]


def test_every_dpo_step_is_told_with_its_loss(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    store.add(documents("ann", "x") + pairs("ann", 6))
    seen: list[TrainStep] = []
    settings = replace(TINY_DPO, max_steps=3, measure=False)
    request = TrainRequest("ann", "dpo", settings=settings, on_step=seen.append)
    service(store, model).train([request])
    assert_counted(seen, 3, ("ann",))


def test_gathered_users_each_hear_only_their_own_steps(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    store.add(documents("ann", "the battery lasts long", "great sound", "bright screen"))
    store.add(documents("bob", "too heavy", "would not buy again"))
    heard: dict[str, list[TrainStep]] = {"ann": [], "bob": []}
    steps = {"ann": 4, "bob": 2}  # bob finishes first and leaves the batch
    requests = [
        TrainRequest(u, "lora", settings=replace(TINY_LORA, max_steps=n), on_step=heard[u].append)
        for u, n in steps.items()
    ]
    results = service(store, model).train(requests, batch_users=2)
    assert all(r.meta["gathered"] == 2 for r in results)
    for user, total in steps.items():
        assert_counted(heard[user], total, (user,))


@pytest.mark.parametrize("batch_users", [1, 2])
def test_lora_training_shows_no_third_party_deprecation_warnings(
    store: SQLiteStore, model: TransformersTextModel, batch_users: int
) -> None:
    """PEFT reads a property transformers deprecates; a user cannot act on that warning."""
    store.add(documents("ann", "the battery lasts long", "great sound"))
    store.add(documents("bob", "too heavy", "would not buy again"))
    requests = [TrainRequest(u, "lora", settings=TINY_LORA) for u in ("ann", "bob")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        service(store, model).train(requests, batch_users=batch_users)
    third_party = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert third_party == []


def test_a_hook_that_raises_stops_the_run_and_saves_nothing(
    store: SQLiteStore, model: TransformersTextModel
) -> None:
    """A service job's hook raises ``TrainingCancelled`` once a cancel is asked."""
    store.add(documents("ann", "the battery lasts long", "great sound"))
    seen: list[TrainStep] = []

    def stop_at_two(step: TrainStep) -> None:
        seen.append(step)
        if step.step == 2:
            raise TrainingCancelled("asked")

    request = TrainRequest("ann", "lora", settings=TINY_LORA, on_step=stop_at_two)
    with pytest.raises(TrainingCancelled):
        service(store, model).train([request])
    assert [s.step for s in seen] == [1, 2]
    assert store.artifacts("ann") == {}


def test_train_cli_shows_pgens_bar_with_the_loss(
    tmp_path: Path, tiny_llama: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        store.add(documents("ann", "the battery lasts long", "great sound", "bright screen"))
    argv = ["train", "--user", "ann", "--batch-size", "1", "--max-steps", "3"]
    assert run(tmp_path, tiny_llama, *argv) == 0
    out, err = capfd.readouterr()
    assert "training lora" in err and "3/3" in err and "loss=" in err  # pgen's bar
    assert "{'loss'" not in out + err  # no trainer's raw log dicts
    assert "3 examples, 3 steps" in out
