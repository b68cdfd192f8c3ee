"""The text methods of ``Engine.train``: ``lora``, ``task-lora`` and ``dpo``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pgen.components import Modality, Tools

S = TypeVar("S", bound=Any)  # LoraSettings or DpoSettings: both have epochs, max_steps

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pgen.context.base import ContextStore
    from pgen.training.dpo import DpoSettings
    from pgen.training.gathered_lora import Gathering
    from pgen.training.registry import TrainRequest


class TextLoraTrainer:
    """``lora``: the user's adapter on their documents. ``task-lora``: the shared task
    adapter over the user and their cohort (all users of the store when none is named)."""

    modality: Modality = "text"
    stoppable = True

    def __init__(self, method: str) -> None:
        self.method = method

    def gathers(self, request: TrainRequest) -> bool:
        """Whether the request can train gathered with others (``train_group``)."""
        return self.method == "lora"

    def train_group(
        self, requests: Sequence[TrainRequest], tools: Tools, gathering: Gathering
    ) -> list[Path]:
        """Many users' ``lora`` gathered: one pass per adapter shape; folders in order."""
        from pgen.training.gathered_lora import shape_key, train_lora_group

        settings = [self._settings(request) for request in requests]
        folders: dict[int, Path] = {}
        shapes: dict[tuple[Any, ...], list[int]] = {}
        for i, one in enumerate(settings):
            shapes.setdefault(shape_key(one.as_dict()), []).append(i)
        for members in shapes.values():
            users = [(requests[i].user_id, settings[i]) for i in members]
            trained = train_lora_group(tools.store, users, tools.text_model, gathering)
            folders.update(zip(members, trained, strict=True))
        return [folders[i] for i in range(len(requests))]

    def _settings(self, request: TrainRequest) -> Any:
        from pgen.training.text_lora import LoraSettings

        settings = request.settings or LoraSettings()
        if not isinstance(settings, LoraSettings):
            raise TypeError(f"{self.method} takes LoraSettings settings")
        return with_steps(settings, request.steps)

    def train(self, request: TrainRequest, tools: Tools) -> Path:
        from pgen.training.task_lora import train_task_lora
        from pgen.training.text_lora import train_user_lora

        settings = self._settings(request)
        stop, on_step = request.should_stop, request.on_step
        if self.method == "lora":
            return train_user_lora(
                tools.store,
                request.user_id,
                tools.text_model,
                settings,
                should_stop=stop,
                on_step=on_step,
            )
        users = [request.user_id, *request.cohort] if request.cohort else None
        if users is None:
            users = [summary.user_id for summary in tools.store.users()]
        return train_task_lora(
            tools.store, users, tools.text_model, settings, should_stop=stop, on_step=on_step
        )


class DpoTrainer:
    """``dpo``: the user's adapter preference-tuned on their feedback (and the cohort's)."""

    method = "dpo"
    modality: Modality = "text"
    stoppable = True

    def check(self, request: TrainRequest, store: ContextStore) -> None:
        """Enough preference pairs, from the store alone: before any model loads."""
        from pgen.training.dpo import training_pairs

        training_pairs(store, request.user_id, self._settings(request))

    def gathers(self, request: TrainRequest) -> bool:
        return True

    def train_group(
        self, requests: Sequence[TrainRequest], tools: Tools, gathering: Gathering
    ) -> list[Path]:
        """Many users' ``dpo`` gathered; folders in the requests' order."""
        from pgen.training.gathered_dpo import train_dpo_group

        users = [(request.user_id, self._settings(request)) for request in requests]
        return train_dpo_group(tools.store, users, tools.text_model, gathering)

    def train(self, request: TrainRequest, tools: Tools) -> Path:
        from pgen.training.dpo import train_user_dpo

        settings = self._settings(request)
        return train_user_dpo(
            tools.store,
            request.user_id,
            tools.text_model,
            settings,
            request.should_stop,
            request.on_step,
        )

    @staticmethod
    def _settings(request: TrainRequest) -> DpoSettings:
        from dataclasses import replace

        from pgen.training.dpo import DpoSettings

        settings = request.settings or DpoSettings()
        if not isinstance(settings, DpoSettings):
            raise TypeError("dpo takes DpoSettings settings")
        if request.cohort:
            settings = replace(settings, cohort=tuple(request.cohort))
        return with_steps(settings, request.steps)


def with_steps(settings: S, steps: int | None) -> S:
    """Exactly ``steps`` optimizer steps: enough epochs to reach them, capped there."""
    if steps is None:
        return settings
    from dataclasses import replace

    return replace(settings, epochs=max(settings.epochs, steps), max_steps=steps)


def text_trainers() -> tuple[TextLoraTrainer | DpoTrainer, ...]:
    return (TextLoraTrainer("lora"), TextLoraTrainer("task-lora"), DpoTrainer())
