"""Training behind ``Engine.train``: requests checked and resolved here, trained by the
registered trainer of their method, on a ``Runner``.

A runner decides where training requests run: ``InlineRunner`` in the calling thread,
``ThreadRunner`` on a bounded pool of threads (the service's jobs). A runner over many
machines (``pgen.run.ray_runner.RayRunner``) implements the same ``run`` and plugs in
through ``Engine(runner=...)``. Many users at once (``fan_out``) go through a
``FanOutRunner`` (``pgen.run.fanout``): fresh adapters skipped, failures per user.

Requests whose trainer can train many users gathered (``lora``, ``dpo``: the trainer's
``train_group``) go to the runner as groups, one per runner worker, each trained
``batch_users`` users at a time (``training.gathered``); ``batch_users=1`` trains each user
alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pgen.components import Tools
from pgen.context.artifacts import ADAPTER_NAME, read_meta
from pgen.context.base import ContextStore
from pgen.errors import InvalidRequest
from pgen.models.base import Embedder
from pgen.results import StaleAdapter
from pgen.run.fanout import FanOut, FanOutRunner, LocalFanOut, Progress, fan_out, one_line
from pgen.training.progress import TrainStep
from pgen.training.registry import TrainRequest, TrainResult, get_trainer, stoppable

STALE_METHODS = ("lora", "dpo")  # the per-user adapters that can fall behind their data

TrainOne = Callable[[TrainRequest], TrainResult]
BATCH_USERS = 16  # users trained at once in a gathered group (lora, dpo)
T = TypeVar("T")  # what a runner is handed: a request, or a group of requests
R = TypeVar("R")


class Runner(Protocol):
    def run(self, requests: Sequence[T], train: Callable[[T], R]) -> list[R]:
        """Every request (or group of requests) trained by ``train``; results in order.
        The first failure is raised once the others have ended."""
        ...


class InlineRunner:
    """One request after another, in the calling thread."""

    def run(self, requests: Sequence[T], train: Callable[[T], R]) -> list[R]:
        return [train(request) for request in requests]


class ThreadRunner:
    """Requests on ``workers`` threads (each trainer holds its own model copy's state)."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise InvalidRequest(f"workers must be at least 1, got {workers}")
        self.workers = workers

    def run(self, requests: Sequence[T], train: Callable[[T], R]) -> list[R]:
        with ThreadPoolExecutor(self.workers, thread_name_prefix="pgen-train") as pool:
            futures = [pool.submit(train, request) for request in requests]
        return [future.result() for future in futures]


class TrainingService:
    def __init__(
        self,
        store: ContextStore,
        tools: Callable[[], Tools],
        embedder: Callable[[], Embedder],
        runner: Runner | None = None,
        batch_users: int = BATCH_USERS,
        measure_effect: bool = True,
    ) -> None:
        self.store = store
        self._tools = tools
        self._embedder = embedder
        self.runner: Runner = runner or InlineRunner()
        self.batch_users = batch_users
        self.measure_effect = measure_effect  # lora / dpo: what the new adapter changes

    def check(self, request: TrainRequest) -> TrainRequest:
        """The request with its cohort resolved, or an error naming what is wrong, before
        any model loads."""
        trainer = self._trainer(request.method)
        if request.steps is not None and not stoppable(trainer):
            raise InvalidRequest(f"{request.method} takes no steps setting (its settings do)")
        if request.steps is not None and request.steps < 1:
            raise InvalidRequest(f"steps must be at least 1, got {request.steps}")
        self.store.user(request.user_id)  # fails with the user named before any model loads
        from pgen.training.cohorts import resolve_cohort

        # ``similar:K``: the K nearest profiles with preference pairs (the embedder loads here).
        request = resolve_cohort(self.store, request, self._embedder)
        for member in request.cohort:
            self.store.user(member)
        # A trainer may check its data from the store (dpo: enough preference pairs).
        check_data = getattr(trainer, "check", None)
        if check_data is not None:
            check_data(request, self.store)
        return request

    def train(
        self,
        requests: Sequence[TrainRequest],
        *,
        checked: bool = False,
        batch_users: int | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> list[TrainResult]:
        """Every request trained; ``batch_users`` > 1 (default ``self.batch_users``): the
        lora and dpo requests gathered, ``progress`` told where each group stands."""
        ready = list(requests) if checked else [self.check(request) for request in requests]
        size = self.batch_users if batch_users is None else batch_users
        if size < 1:
            raise InvalidRequest(f"batch_users must be at least 1, got {size}")
        if getattr(self.runner, "opens_own_engine", False):
            # A runner over other processes (Ray) cannot carry this engine's closures: it
            # is handed the requests, and each of its tasks opens an engine and gathers
            # its group there.
            return self.runner.run(ready, self.train_one)
        groups = self._groups(ready, size)

        def train_unit(group: list[int]) -> list[TrainResult]:
            if len(group) == 1:
                return [self.train_one(ready[group[0]])]
            return self.train_group([ready[i] for i in group], size, progress)

        results: dict[int, TrainResult] = {}
        for group, done in zip(groups, self.runner.run(groups, train_unit), strict=True):
            results.update(zip(group, done, strict=True))
        return [results[i] for i in range(len(ready))]

    def _gathers(self, request: TrainRequest, size: int) -> bool:
        trainer = self._trainer(request.method)
        gathers = getattr(trainer, "gathers", None)
        return size > 1 and gathers is not None and bool(gathers(request))

    def _groups(self, requests: Sequence[TrainRequest], size: int) -> list[list[int]]:
        """Requests one by one, but those that gather (two or more of a method): one group
        per method and runner worker (a runner over many machines trains each group on one
        of them)."""
        workers = max(1, int(getattr(self.runner, "workers", 1)))
        alone: list[list[int]] = []
        by_method: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            if self._gathers(request, size):
                by_method.setdefault(request.method, []).append(i)
            else:
                alone.append([i])
        groups = []
        for members in by_method.values():
            if len(members) == 1:  # one user gains nothing from gathering: trained alone
                alone.append(members)
                continue
            groups += [members[w::workers] for w in range(workers) if members[w::workers]]
        return alone + groups

    def train_group(
        self,
        requests: Sequence[TrainRequest],
        batch_users: int,
        progress: Callable[[Any], None] | None = None,
    ) -> list[TrainResult]:
        """Requests of one method trained gathered, ``batch_users`` at a time: what any
        runner calls for a group. A stop asked by any request stops the group between
        steps; finished users are saved, the others are not."""
        from pgen.training.gathered_lora import Gathering

        stops = [r.should_stop for r in requests if r.should_stop is not None]
        told = {r.user_id: r.on_step for r in requests if r.on_step is not None}

        def on_step(step: TrainStep) -> None:  # each user's step to their own request's hook
            for user_id in step.users:
                if user_id in told:
                    told[user_id](step)

        gathering = Gathering(
            batch_users=batch_users,
            should_stop=(lambda: any(stop() for stop in stops)) if stops else None,
            progress=progress,
            on_step=on_step if told else None,
        )
        started = time.perf_counter()
        trainer = self._trainer(requests[0].method)
        folders = trainer.train_group(requests, self._tools(), gathering)
        seconds = (time.perf_counter() - started) / len(requests)
        return [self._result(r, f, seconds) for r, f in zip(requests, folders, strict=True)]

    def train_one(self, request: TrainRequest) -> TrainResult:
        started = time.perf_counter()
        folder = self._trainer(request.method).train(request, self._tools())
        return self._result(request, folder, time.perf_counter() - started)

    def _result(self, request: TrainRequest, folder: Path, seconds: float) -> TrainResult:
        meta = read_meta(folder)
        details = {} if meta is None else {**meta.extra, "base_model": meta.base_model}
        if self.measure_effect and request.method in STALE_METHODS and meta is not None:
            from pgen.training.effect import adapter_effect

            held_out = details.get("held_out_doc_ids", [])
            model = self._tools().text_model
            details["effect"] = adapter_effect(
                self.store, model, request.method, request.user_id, folder, held_out
            )
        return TrainResult(request.user_id, request.method, folder, seconds, details)

    def fresh(self, request: TrainRequest) -> bool:
        """The user has an adapter of this method, current with their data and the base
        model (a fan-out skips them). Only lora and dpo adapters can be judged so."""
        if request.method not in STALE_METHODS:
            return False
        if not self.store.artifacts(request.user_id).get((request.method, ADAPTER_NAME)):
            return False
        from pgen.personalize.lora import stale_reason

        base_model = self._tools().text_model.name
        return stale_reason(self.store, request.user_id, request.method, base_model) is None

    def fan_out(
        self,
        requests: Sequence[TrainRequest],
        runner: FanOutRunner | None = None,
        *,
        retries: int = 2,
        progress: Progress | None = None,
        retrain: bool = False,
    ) -> FanOut:
        """Many users trained on ``runner`` (default: one after another here): fresh
        adapters skipped (``retrain``: none, for a caller that judged them by more than
        their data, as a benchmark's settings), a failing user retried then reported, the
        others trained. A request that fails its check is reported, not trained."""
        checked, refused = [], {}
        for request in requests:
            try:
                checked.append(self.check(request))
            except Exception as error:  # this user's request: reported, the others go on
                refused[request.user_id] = one_line(error)
        found = fan_out(
            checked,
            self.train_one,
            runner or LocalFanOut(),
            fresh=(lambda _: False) if retrain else self.fresh,
            retries=retries,
            progress=progress,
            train_group=lambda group: self.train(group, checked=True, batch_users=len(group)),
        )
        found.failed.update(refused)
        return found

    def stale(self, methods: Sequence[str] | None = None) -> list[StaleAdapter]:
        """Every user's adapter of ``methods`` (default: lora and dpo) that is stale."""
        from pgen.personalize.lora import stale_reason

        chosen = list(methods or STALE_METHODS)
        unknown = sorted(set(chosen) - set(STALE_METHODS))
        if unknown:
            known = ", ".join(STALE_METHODS)
            raise InvalidRequest(f"stale adapters are {known}'s, not {', '.join(unknown)}'s")
        base_model: str | None = None
        found = []
        for summary in self.store.users(0, None):
            for method in chosen:
                if not self.store.artifacts(summary.user_id).get((method, ADAPTER_NAME)):
                    continue
                if base_model is None:  # the model loads only when someone has an adapter
                    base_model = self._tools().text_model.name
                why = stale_reason(self.store, summary.user_id, method, base_model)
                if why is not None:
                    found.append(StaleAdapter(summary.user_id, method, why))
        return found

    @staticmethod
    def _trainer(method: str):  # type: ignore[no-untyped-def]
        try:
            return get_trainer(method)
        except ValueError as error:
            raise InvalidRequest(str(error)) from None
