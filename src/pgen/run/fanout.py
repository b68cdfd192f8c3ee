"""Many users' training ("fan-out"): each user is trained or reported, never both, and one
user's failure never stops the others.

A fan-out takes checked requests, skips users whose adapter is fresh (trained on their
current data and base model), and hands the rest, in groups, to a runner's ``fan_out``:
``LocalFanOut`` here (threads of this process), ``RayRunner`` (``pgen.run.ray_runner``) on
a Ray cluster. A user whose training fails is tried again, up to ``retries`` more times,
then reported with the last error. ``progress`` is called after every user with the
counts so far and an ETA from the mean time per user.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol

from pgen.training.registry import TrainRequest, TrainResult

TrainOne = Callable[[TrainRequest], TrainResult]


@dataclass
class FanOutProgress:
    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the mean pace so far (None before the first user ends)."""
        ended = self.done + self.failed
        if ended == 0:
            return None
        left = self.total - self.skipped - ended
        return (time.monotonic() - self.started) / ended * left

    def line(self) -> str:
        eta = self.eta_s
        return (
            f"{self.done} done, {self.failed} failed, {self.skipped} fresh (skipped) "
            f"of {self.total}; ETA {'?' if eta is None else f'{eta:.0f} s'}"
        )


Progress = Callable[[FanOutProgress], None]


@dataclass
class FanOut:
    """What a fan-out did: results of the trained users (in the requests' order), the
    users that failed with their last error, and the users skipped as fresh."""

    results: list[TrainResult]
    failed: dict[str, str]
    skipped: list[str]
    attempts: dict[str, int]


class FanOutRunner(Protocol):
    def fan_out(
        self,
        requests: Sequence[TrainRequest],
        train: TrainOne,
        retries: int,
        progress: Callable[[str, TrainResult | None, str | None], None],
    ) -> dict[str, int]:
        """Train every request (``train`` where it runs in this process), calling
        ``progress(user, result, error)`` once per user when it ends; returns the attempts
        each user took."""
        ...


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:500] or type(error).__name__


TrainGroup = Callable[[list[TrainRequest]], list[TrainResult]]


def train_gathered(
    group: list[TrainRequest], train: TrainOne, train_group: TrainGroup | None, retries: int
) -> list[tuple[TrainResult | None, str | None, int]]:
    """``(result, error, attempts)`` for each request of ``group``: the group trained
    gathered in one pass when it can be; when that fails (one user's bad data fails the
    pass), each user alone with ``retries``, so the others still train."""
    if train_group is not None and len(group) > 1:
        try:
            return [(result, None, 1) for result in train_group(group)]
        except Exception:  # found out per user below, and reported there
            pass
    found: list[tuple[TrainResult | None, str | None, int]] = []
    for request in group:
        error = ""
        for attempt in range(1, retries + 2):
            try:
                found.append((train(request), None, attempt))
                break
            except Exception as failed:  # reported per user; the others go on
                error = one_line(failed)
        else:
            found.append((None, error, retries + 1))
    return found


def groups_of(requests: Sequence[TrainRequest], size: int) -> list[list[TrainRequest]]:
    """Consecutive requests of one method, at most ``size`` to a group."""
    groups: list[list[TrainRequest]] = []
    for request in requests:
        last = groups[-1] if groups else None
        if last is not None and len(last) < size and last[0].method == request.method:
            last.append(request)
        else:
            groups.append([request])
    return groups


class LocalFanOut:
    """Users on ``workers`` threads of this process (1: one after another), ``batch_users``
    of them gathered in one training pass where the trainer can (lora, dpo)."""

    def __init__(self, workers: int = 1, batch_users: int = 1) -> None:
        self.workers = max(1, workers)
        self.batch_users = max(1, batch_users)

    def fan_out(
        self,
        requests: Sequence[TrainRequest],
        train: TrainOne,
        retries: int,
        progress: Callable[[str, TrainResult | None, str | None], None],
        train_group: TrainGroup | None = None,
    ) -> dict[str, int]:
        attempts: dict[str, int] = {}

        def one(group: list[TrainRequest]) -> list[tuple[TrainResult | None, str | None, int]]:
            return train_gathered(group, train, train_group, retries)

        groups = groups_of(requests, self.batch_users)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="pgen-fanout") as pool:
            futures = {pool.submit(one, group): group for group in groups}
            for future in as_completed(futures):
                for request, (result, error, tries) in zip(
                    futures[future], future.result(), strict=True
                ):
                    attempts[request.user_id] = tries
                    progress(request.user_id, result, error)
        return attempts


def fan_out(
    requests: Sequence[TrainRequest],
    train: TrainOne,
    runner: Any,
    *,
    fresh: Callable[[TrainRequest], bool],
    retries: int = 2,
    progress: Progress | None = None,
    train_group: TrainGroup | None = None,
) -> FanOut:
    """Train ``requests`` on ``runner`` (a ``FanOutRunner``), skipping fresh adapters."""
    state = FanOutProgress(len(requests))
    todo: list[TrainRequest] = []
    skipped: list[TrainRequest] = []
    for request in requests:
        (skipped if fresh(request) else todo).append(request)
    state.skipped = len(skipped)
    results: dict[str, TrainResult] = {}
    failed: dict[str, str] = {}

    def ended(user: str, result: TrainResult | None, error: str | None) -> None:
        if result is not None:
            results[user] = result
            state.done += 1
        else:
            failed[user] = error or "failed"
            state.failed += 1
        if progress is not None:
            progress(state)

    if not todo:
        attempts: dict[str, int] = {}
    elif train_group is not None and isinstance(runner, LocalFanOut):
        attempts = runner.fan_out(todo, train, retries, ended, train_group)
    else:
        attempts = runner.fan_out(todo, train, retries, ended)
    ordered = [results[r.user_id] for r in todo if r.user_id in results]
    return FanOut(ordered, failed, [r.user_id for r in skipped], attempts)
