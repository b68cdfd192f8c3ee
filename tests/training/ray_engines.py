"""What the Ray test's tasks open: the real engine, wrapped so that one chosen user's
first attempt kills its own Ray worker (-9) midway through training, after some steps."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pgen.config import Config
from pgen.training.registry import TrainRequest, TrainResult


class _Killing:
    def __init__(self, engine: Any, victim: str, marks: Path) -> None:
        self.engine = engine
        self.victim = victim
        self.marks = marks

    def train(self, request: TrainRequest, *, checked: bool = False) -> TrainResult:
        attempt = len(list(self.marks.glob(f"{request.user_id}.*"))) + 1
        (self.marks / f"{request.user_id}.{attempt}").write_text(str(os.getpid()))
        if request.user_id == self.victim and attempt == 1:
            steps = [0]

            def kill_midway() -> bool:  # asked between optimizer steps
                steps[0] += 1
                if steps[0] == 3:  # two steps trained, nothing saved yet
                    os.kill(os.getpid(), signal.SIGKILL)
                return False

            request = replace(request, should_stop=kill_midway)
        result: TrainResult = self.engine.train(request, checked=checked)
        return result


@dataclass(frozen=True)
class KillingOpener:
    config: Config
    victim: str
    marks: Path

    def __call__(self) -> _Killing:
        from pgen.engine import Engine

        return _Killing(Engine.open(self.config), self.victim, self.marks)
