"""Gathering concurrent generate requests into one model batch.

Requests that arrive within ``wait_s`` of the first one waiting (at most ``max_batch``)
share one ``Engine.generate_many`` call per tenant: a causal LM decodes a batch of 16 in
little more time than one. The model runs on one thread of its own, so calls never
overlap; while it works, the next batch gathers. A batch that fails is retried one
request at a time, so one bad request (its user deleted meanwhile) fails only itself.

A request may bring a sink: its text, delta by delta, as the model decodes it, called on
the event loop. A retried request is decoded again from its start; its sink gets only the
text it has not had yet.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pgen.engine import Engine
from pgen.models.base import GenerationSettings, TextSink
from pgen.personalize import TextRequest
from pgen.results import Generation


class _Relay:
    """A request's deltas, from the model thread to its sink on the event loop, across
    attempts: a retry decodes the reply again from its start, and only the text beyond
    what the sink already had goes through. Greedy decoding repeats itself; a sampled
    retry that tells another story is not passed on (the route sees its final text
    differ from what was streamed). Once the request is settled or cancelled, nothing
    more is delivered."""

    def __init__(self, sink: TextSink, future: asyncio.Future[Generation]) -> None:
        self.sink = sink
        self.future = future
        self.sent = ""  # what the sink has been handed, over every attempt
        self.attempt = ""  # what this attempt has decoded so far

    def restart(self) -> None:
        self.attempt = ""

    def __call__(self, delta: str) -> None:  # on the model thread
        self.attempt += delta
        if len(self.attempt) <= len(self.sent) or not self.attempt.startswith(self.sent):
            return
        new, self.sent = self.attempt[len(self.sent) :], self.attempt
        self.future.get_loop().call_soon_threadsafe(self._deliver, new)

    def _deliver(self, delta: str) -> None:  # on the event loop
        if not self.future.done():
            self.sink(delta)


@dataclass
class _Pending:
    engine: Engine
    request: TextRequest
    settings: GenerationSettings
    save: bool
    future: asyncio.Future[Generation]
    relay: _Relay | None = None
    queued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    batches: int = 0
    requests: int = 0
    largest: int = 0


class Batcher:
    def __init__(self, max_batch: int = 16, wait_s: float = 0.01) -> None:
        if max_batch < 1 or wait_s < 0:
            raise ValueError("max_batch must be >= 1 and wait_s >= 0")
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.stats = BatchStats()
        self._taken = 0  # requests handed to generate, in stats once their batch has run
        self._recorded = threading.Condition()  # notified as each batch is in stats
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="pgen-model")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop (graceful shutdown)."""
        if self._queue is not None and self._task is not None:
            await self._queue.join()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._model_thread.shutdown(wait=True)

    async def generate(
        self,
        engine: Engine,
        request: TextRequest,
        settings: GenerationSettings,
        save: bool = True,
        sink: TextSink | None = None,
    ) -> Generation:
        """The request's generation, in a batch with others; ``sink`` (called on this event
        loop) receives its text as it is decoded, all of it before this returns."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        future: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        relay = None if sink is None else _Relay(sink, future)
        with self._recorded:
            self._taken += 1
        await self._queue.put(_Pending(engine, request, settings, save, future, relay))
        return await future

    def settled(self, timeout: float | None = None) -> bool:
        """From a thread other than the event loop's: wait until every request handed to
        ``generate`` so far is counted in ``stats`` (a request's answer is sent a moment
        before its batch is counted). False if ``timeout`` seconds pass first."""
        with self._recorded:
            return self._recorded.wait_for(lambda: self.stats.requests >= self._taken, timeout)

    async def _gather(self, queue: asyncio.Queue[_Pending]) -> list[_Pending]:
        batch = [await queue.get()]
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while len(batch) < self.max_batch:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 and queue.empty():
                break
            try:
                batch.append(queue.get_nowait() if left <= 0 else await _get(queue, left))
            except (TimeoutError, asyncio.QueueEmpty):
                break
        return batch

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather(self._queue)
            try:
                groups: dict[tuple[int, GenerationSettings, bool], list[_Pending]] = {}
                for pending in batch:
                    key = (id(pending.engine), pending.settings, pending.save)
                    groups.setdefault(key, []).append(pending)
                for group in groups.values():
                    await loop.run_in_executor(self._model_thread, self._generate, group)
                with self._recorded:
                    self.stats.batches += 1
                    self.stats.requests += len(batch)
                    self.stats.largest = max(self.stats.largest, len(batch))
                    self._recorded.notify_all()
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _generate(self, group: list[_Pending]) -> None:
        """On the model thread: one call for the group, or one per request if it fails."""
        engine, settings, save = group[0].engine, group[0].settings, group[0].save
        for pending in group:
            if pending.relay is not None:
                pending.relay.restart()
        try:
            results = engine.generate_many(
                [p.request for p in group],
                settings,
                save=save,
                batch_size=self.max_batch,
                sinks=[p.relay for p in group],
            )
        except Exception as error:
            if len(group) == 1:
                _settle(group[0], error=error)
                return
            for pending in group:
                self._generate([pending])
            return
        for pending, result in zip(group, results, strict=True):
            _settle(pending, result=result)


async def _get(queue: asyncio.Queue[_Pending], timeout: float) -> _Pending:
    return await asyncio.wait_for(queue.get(), timeout)


def _settle(
    pending: _Pending, *, result: Generation | None = None, error: BaseException | None = None
) -> None:
    """Hand the outcome to the waiting request, on the event loop's thread."""
    future = pending.future

    def settle() -> None:
        if future.done():  # the client went away and its request was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    future.get_loop().call_soon_threadsafe(settle)
