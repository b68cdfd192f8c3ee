"""How a training run reports its steps: one ``TrainStep`` per optimizer step (the step,
the total, its loss, whose adapter) to the caller's ``on_step`` (a service job's progress
record, a CLI) and to pgen's own bar and log. Every trainer goes through ``StepBar``, so
third-party trainers' bars and raw log dicts never reach the terminal."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tqdm import tqdm

log = logging.getLogger("pgen.training")


@dataclass(frozen=True)
class TrainStep:
    """One optimizer step done: ``step`` of ``total`` (counted from 1), its ``loss``, and
    the users whose adapter it trained (one; a task adapter's: all it pools)."""

    step: int
    total: int
    loss: float
    users: tuple[str, ...]


OnStep = Callable[[TrainStep], None]


class StepBar:
    """pgen's bar for one run ("training <what>", the loss beside it), a debug line per
    step on ``pgen.training``, and ``on_step`` told each step. ``show``: draw the bar (a
    caller's on_step and the log are told either way)."""

    def __init__(
        self,
        what: str,
        total: int,
        users: Sequence[str],
        *,
        show: bool = True,
        on_step: OnStep | None = None,
    ) -> None:
        self.what = what
        self.total = total
        self.users = tuple(users)
        self.on_step = on_step
        self.steps = 0
        self._bar = tqdm(total=total, desc=f"training {what}", unit="step", disable=not show)

    def step(self, loss: float) -> None:
        """The next step is done with ``loss``."""
        self.steps += 1
        self._bar.update(1)
        self._bar.set_postfix(loss=f"{loss:.3f}")
        log.debug("%s step %d/%d: loss %.4f", self.what, self.steps, self.total, loss)
        if self.on_step is not None:
            self.on_step(TrainStep(self.steps, self.total, loss, self.users))

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> StepBar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: Any, trace: TracebackType | None
    ) -> None:
        self.close()
