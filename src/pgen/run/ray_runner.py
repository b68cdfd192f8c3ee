"""Training on a Ray cluster: each group of users is one Ray task.

A task opens the engine itself, from ``open_engine`` (``functools.partial(Engine.open,
config)``: the store from its URL or path, which every worker must reach, such as a
SQLite file on a shared disk; the models from the same settings), and keeps it open for
the next task in the same worker process. A task that dies with its worker (killed,
out of memory) is retried by Ray up to ``retries`` times; a user whose training raises
is tried again as a task of its own, up to ``retries`` times; then it is reported and the
others go on. Trainers save an adapter's metadata last, so a run killed midway leaves no
artifact that counts (``pgen doctor`` removes leftovers), and its retry trains afresh.

``address``: ``None`` starts a local Ray (``num_cpus``), ``"auto"`` or ``"ray://host:port"``
joins a running cluster (``ray start --head``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from pgen.errors import InvalidRequest
from pgen.run.fanout import TrainOne, one_line, train_gathered
from pgen.training.registry import TrainRequest, TrainResult

RAY_START_TIMEOUT_S = 120.0
_ENGINES: dict[str, Any] = {}  # per Ray worker process: the engines it opened, by opener
_OPENING = threading.Lock()


def train_group(
    open_engine: Callable[[], Any], requests: list[TrainRequest]
) -> list[tuple[str, TrainResult | None, str | None]]:
    """In a Ray worker: train each request of the group; ``(user, result, error)`` each."""
    key = repr(open_engine)
    with _OPENING:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = open_engine()
    # The group in one gathered pass (lora, dpo); if that fails, each user alone, so one
    # user's failure is theirs and the others go on (Ray retries the failed ones).
    done = train_gathered(
        list(requests),
        lambda request: engine.train(request, checked=True),
        lambda group: engine.train_many(group, batch_users=len(group)),
        retries=0,
    )
    pairs = zip(requests, done, strict=True)
    return [(request.user_id, result, error) for request, (result, error, _) in pairs]


class RayRunner:
    # Its tasks open their own engine (``open_engine``): ``TrainingService`` hands it the
    # requests themselves, never a closure over the calling process's engine.
    opens_own_engine = True

    def __init__(
        self,
        open_engine: Callable[[], Any],
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        group_size: int = 1,
        cpus_per_task: float = 1.0,
        retries: int = 2,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        if group_size < 1:
            raise InvalidRequest(f"group_size must be at least 1, got {group_size}")
        self.open_engine = open_engine
        self.address = address
        self.num_cpus = num_cpus
        self.group_size = group_size
        self.cpus_per_task = cpus_per_task
        self.retries = retries
        self.init_options = init_options or {}

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise InvalidRequest("the ray runner needs Ray: pip install 'pgen[ray]'") from None
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": "warning",
                "log_to_driver": True,
                **self.init_options,
            }
            if self.address is None:  # a local Ray, on loopback only
                options.setdefault("num_cpus", self.num_cpus or os.cpu_count() or 1)
                options.setdefault("_node_ip_address", "127.0.0.1")
            ray.init(address=self.address, **options)
        return ray

    def fan_out(
        self,
        requests: Sequence[TrainRequest],
        train: TrainOne,
        retries: int,
        progress: Callable[[str, TrainResult | None, str | None], None],
    ) -> dict[str, int]:
        """``train`` is unused: a task cannot carry this process's engine; it opens its own."""
        ray = self._ray()
        task = ray.remote(train_group).options(
            num_cpus=self.cpus_per_task, max_retries=retries, retry_exceptions=False
        )
        attempts: dict[str, int] = {}
        pending: dict[Any, list[TrainRequest]] = {}

        def submit(group: list[TrainRequest]) -> None:
            for request in group:
                attempts[request.user_id] = attempts.get(request.user_id, 0) + 1
            pending[task.remote(self.open_engine, group)] = group

        for start in range(0, len(requests), self.group_size):
            submit(list(requests[start : start + self.group_size]))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(ready[0])
            try:
                outcomes = ray.get(ready[0])
            except Exception as died:  # the task's worker died on every retry
                outcomes = [(r.user_id, None, one_line(died)) for r in group]
            by_user = {r.user_id: r for r in group}
            for user, result, failure in outcomes:
                if failure is not None and attempts[user] <= retries:
                    submit([by_user[user]])  # alone this time: the others are done
                else:
                    progress(user, result, failure)
        return attempts

    def run(self, requests: Sequence[TrainRequest], train: TrainOne) -> list[TrainResult]:
        """The ``Runner`` protocol (``Engine(runner=RayRunner(...))``): results in order,
        the first failure raised once every user has ended."""
        results: dict[str, TrainResult] = {}
        errors: dict[str, str] = {}

        def ended(user: str, result: TrainResult | None, error: str | None) -> None:
            if result is not None:
                results[user] = result
            else:
                errors[user] = error or "failed"

        self.fan_out(requests, train, self.retries, ended)
        if errors:
            user, error = next(iter(errors.items()))
            raise RuntimeError(f"training user {user!r} failed: {error}")
        return [results[r.user_id] for r in requests]

    @staticmethod
    def shutdown() -> None:
        import ray

        ray.shutdown()


def parse_runner(text: str) -> tuple[str, str | None]:
    """``inline``, ``threads:N``, ``ray`` or ``ray:ADDRESS``: (kind, address or count)."""
    kind, _, rest = text.partition(":")
    if kind not in ("inline", "threads", "ray"):
        raise InvalidRequest(f"--runner is inline, threads:N, ray or ray:ADDRESS, not {text!r}")
    if kind == "threads" and not rest.isdigit():
        raise InvalidRequest(f"--runner threads:N needs a number of threads, not {rest!r}")
    return kind, rest or None
