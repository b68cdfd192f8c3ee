"""Where the benchmarks' per-user adapters train (``bench text``'s lora and dpo, ``bench
prefs``' DPO adapters): on the runner ``pgen train --users`` uses, through
``Engine.fan_out``. ``inline``: one user after another in this process; ``ray``: a local
Ray, ``ray:ADDRESS``: a running cluster, each task opening the engine from the bench's own
settings (its store, which every worker must reach, and its model).

The bench decides what to train (by its own settings and caps, not only the data), so
nothing is skipped as fresh, and a failure fails the run: a score from a missing adapter
would be a score of something else. ``batch_users`` > 1 trains that many users gathered
(``training.gathered``); both runners group the requests alike, so an adapter does not
depend on where it trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgen.config import Config
from pgen.run.fanout import LocalFanOut
from pgen.training.registry import TrainRequest, TrainResult

if TYPE_CHECKING:
    from pgen.context.base import ContextStore
    from pgen.models.base import Embedder, TextModel

RUNNER_HELP = (
    "where the per-user adapters train: inline (here, one user after another), ray (a "
    "local Ray) or ray:ADDRESS (a running cluster whose workers reach the bench's store)"
)
BATCH_USERS_HELP = (
    "per-user adapters trained this many at once, gathered, where the trainer can "
    "(lora, dpo); 1 (the default): each alone, as the recorded runs were"
)


@dataclass(frozen=True)
class BenchTraining:
    runner: str = "inline"  # inline, ray or ray:ADDRESS
    batch_users: int = 1
    config: Config | None = None  # what a Ray task opens: the bench's model (and store)

    def check(self) -> None:
        """A bad ``runner`` or ``batch_users`` fails before any model loads."""
        from pgen.run.ray_runner import parse_runner

        kind, _ = parse_runner(self.runner)
        if kind == "threads":  # one model shared by threads that train it: not offered
            raise ValueError(f"--runner is inline, ray or ray:ADDRESS, not {self.runner!r}")
        if self.batch_users < 1:
            raise ValueError(f"--batch-users must be at least 1, got {self.batch_users}")

    def _runner(self, store: Path | None) -> Any:
        from pgen.run.ray_runner import RayRunner, parse_runner

        self.check()
        kind, address = parse_runner(self.runner)
        if kind == "inline":
            return LocalFanOut(1, self.batch_users)
        if self.config is None:
            raise ValueError("the ray runner needs the bench's settings to open its engine")
        config = self.config if store is None else replace(self.config, store=store)
        from pgen.engine import Engine

        opener = partial(Engine.open, config, measure_effect=False)
        threads = config.torch_threads
        return RayRunner(opener, address, num_cpus=threads, group_size=self.batch_users)

    def train(
        self,
        store: ContextStore,
        model: TextModel,
        requests: Sequence[TrainRequest],
        path: Path | None = None,
    ) -> list[TrainResult]:
        """Every request trained (one per user) on ``store`` with ``model``, results in
        order; the first failure raised. ``path``: the store's file, when ``config``
        names another store (a Ray task opens it there)."""
        from pgen.engine import Engine

        users = [r.user_id for r in requests]
        if len(set(users)) != len(users):  # a user's adapter folder holds one at a time
            raise ValueError(f"one training per user at a time, got {users}")
        if not requests:
            return []
        # The bench scores by its own metrics: no effect measured after each adapter.
        engine = Engine(store, model, _no_embedder, measure_effect=False)
        done = engine.fan_out(requests, self._runner(path), retries=0, retrain=True)
        if done.failed:
            user, error = next(iter(done.failed.items()))
            raise RuntimeError(f"training user {user!r} failed: {error}")
        by_user = {result.user_id: result for result in done.results}
        return [by_user[user] for user in users]


def _no_embedder() -> Embedder:
    raise RuntimeError("a benchmark names every cohort: no embedder is needed to train")
