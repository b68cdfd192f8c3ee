"""What ``Engine.train`` can train: one registry of trainers (subject adapters for images,
per-user adapters for text), each named by its method."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pgen.components import Modality, Tools
from pgen.results import TrainResult as TrainResult  # re-exported: what a trainer's run returns

if TYPE_CHECKING:
    from pgen.training.progress import OnStep


@dataclass(frozen=True)
class TrainRequest:
    """Train ``method`` for one user. ``subject``: which of the user's subjects (image
    methods); ``cohort``: other users whose data may be pooled in (when the method allows);
    ``settings``: the method's own settings object (None: its defaults). Methods whose
    trainer is ``stoppable`` also take ``steps`` (optimizer steps, over the settings'
    own) and ``should_stop`` (asked between steps; True stops the run, nothing saved).
    ``on_step``: told after every optimizer step (step, total, loss, whose adapter); it
    may raise ``TrainingCancelled`` to stop the run, nothing saved."""

    user_id: str
    method: str
    subject: str | None = None
    cohort: tuple[str, ...] = ()
    settings: Any = None
    steps: int | None = None
    should_stop: Callable[[], bool] | None = field(default=None, compare=False)
    on_step: OnStep | None = field(default=None, compare=False)


class Trainer(Protocol):
    method: str
    modality: Modality

    def train(self, request: TrainRequest, tools: Tools) -> Path:
        """Train and save the artifact (registered with the store); returns its folder."""
        ...


_TRAINERS: dict[str, Trainer] = {}


def register_trainer(trainer: Trainer) -> Trainer:
    if trainer.method in _TRAINERS:
        raise ValueError(f"a trainer for {trainer.method!r} is registered already")
    _TRAINERS[trainer.method] = trainer
    if trainer.modality == "text":  # a text trainer saves a PEFT adapter of its kind
        from pgen.models.text_adapters import register_adapter_kind

        register_adapter_kind(getattr(trainer, "adapter_kind", None) or trainer.method)
    return trainer


def trainer_methods(modality: Modality | None = None) -> list[str]:
    return [m for m, t in _TRAINERS.items() if modality is None or t.modality == modality]


def stoppable(trainer: Trainer) -> bool:
    """Whether the trainer honours ``TrainRequest.steps`` and ``should_stop``."""
    return bool(getattr(trainer, "stoppable", False))


def get_trainer(method: str) -> Trainer:
    try:
        return _TRAINERS[method]
    except KeyError:
        known = ", ".join(_TRAINERS)
        raise ValueError(f"unknown training method {method!r}; choose from {known}") from None


def get_registered() -> dict[str, Trainer]:
    return dict(_TRAINERS)
