"""Training behind ``Engine.train``: requests checked and resolved here, trained by the
registered trainer of their method, on a ``Runner``.

A runner decides where training requests run: ``InlineRunner`` in the calling thread,
``ThreadRunner`` on a bounded pool of threads (the service's jobs). A runner over many
machines (``pgen.run.ray_runner.RayRunner``) implements the same ``run`` and plugs in
through ``Engine(runner=...)``. Many users at once (``fan_out``) go through a
``FanOutRunner`` (``pgen.run.fanout``): fresh adapters skipped, failures per user.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from pgen.components import Tools
from pgen.context.artifacts import ADAPTER_NAME, read_meta
from pgen.context.base import ContextStore
from pgen.errors import InvalidRequest
from pgen.models.base import Embedder
from pgen.results import StaleAdapter
from pgen.run.fanout import FanOut, FanOutRunner, LocalFanOut, Progress, fan_out, one_line
from pgen.training.registry import TrainRequest, TrainResult, get_trainer, stoppable

STALE_METHODS = ("lora", "dpo")  # the per-user adapters that can fall behind their data

TrainOne = Callable[[TrainRequest], TrainResult]


class Runner(Protocol):
    def run(self, requests: Sequence[TrainRequest], train: TrainOne) -> list[TrainResult]:
        """Every request trained by ``train``; results in the requests' order. The first
        failure is raised once the others have ended."""
        ...


class InlineRunner:
    """One request after another, in the calling thread."""

    def run(self, requests: Sequence[TrainRequest], train: TrainOne) -> list[TrainResult]:
        return [train(request) for request in requests]


class ThreadRunner:
    """Requests on ``workers`` threads (each trainer holds its own model copy's state)."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise InvalidRequest(f"workers must be at least 1, got {workers}")
        self.workers = workers

    def run(self, requests: Sequence[TrainRequest], train: TrainOne) -> list[TrainResult]:
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
    ) -> None:
        self.store = store
        self._tools = tools
        self._embedder = embedder
        self.runner: Runner = runner or InlineRunner()

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
        self, requests: Sequence[TrainRequest], *, checked: bool = False
    ) -> list[TrainResult]:
        ready = list(requests) if checked else [self.check(request) for request in requests]
        return self.runner.run(ready, self.train_one)

    def train_one(self, request: TrainRequest) -> TrainResult:
        started = time.perf_counter()
        folder = self._trainer(request.method).train(request, self._tools())
        meta = read_meta(folder)
        return TrainResult(
            request.user_id,
            request.method,
            folder,
            time.perf_counter() - started,
            {} if meta is None else {**meta.extra, "base_model": meta.base_model},
        )

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
    ) -> FanOut:
        """Many users trained on ``runner`` (default: one after another here): fresh
        adapters skipped, a failing user retried then reported, the others trained. A
        request that fails its check is reported, not trained."""
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
            fresh=self.fresh,
            retries=retries,
            progress=progress,
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
