"""Subject trainers (``Engine.train`` methods ``dreambooth-lora`` and ``textual-inversion``):
one of the user's subjects, from its reference images, saved as the user's artifact. The
training loops import torch and diffusers, so they load only when a subject is trained."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgen.components import Modality, Tools
from pgen.context.base import ContextStore
from pgen.context.records import Subject
from pgen.personalize.subject import TRAINERS, find_subject
from pgen.training.progress import OnStep
from pgen.training.stopping import StopCheck
from pgen.training.subject_artifacts import METADATA_FILE, SubjectTrainingSettings

if TYPE_CHECKING:
    from pgen.models.image import DiffusersImageModel
    from pgen.training.registry import TrainRequest

Trainer = Callable[
    [
        "DiffusersImageModel",
        Subject,
        Path,
        SubjectTrainingSettings,
        StopCheck | None,
        OnStep | None,
    ],
    dict[str, Any],
]


def _trainer(method: str) -> Trainer:
    if method == "dreambooth-lora":
        from pgen.training.dreambooth import train_dreambooth_lora

        return train_dreambooth_lora
    from pgen.training.textual_inversion import train_textual_inversion

    return train_textual_inversion


def train_subject(
    store: ContextStore,
    user_id: str,
    subject_name: str,
    model: DiffusersImageModel,
    method: str,
    config: SubjectTrainingSettings | None = None,
    should_stop: StopCheck | None = None,
    on_step: OnStep | None = None,
) -> Path:
    """Train one of the user's subjects; returns the artifact folder (registered in the store,
    so ``delete_user`` removes it). ``should_stop`` is asked before every step: when it says
    so, ``TrainingCancelled`` and no artifact (an earlier run's is gone too: the folder was
    emptied first, so no half-old, half-new artifact is ever read). ``on_step`` is told
    after every step (pgen's bar shows it too, unless the settings turn it off)."""
    if method not in TRAINERS:
        raise ValueError(f"unknown training method {method!r}; expected one of {sorted(TRAINERS)}")
    subject = find_subject(store, user_id, subject_name)
    folder = store.artifact_path(user_id, method, subject.name)
    (folder / METADATA_FILE).unlink(missing_ok=True)  # first: the folder is unfinished now
    for stale in folder.iterdir():  # weights of an earlier run (files; class images live apart)
        if stale.is_file():
            stale.unlink()
    try:
        settings = config or SubjectTrainingSettings()
        _trainer(method)(model, subject, folder, settings, should_stop, on_step)
    except BaseException:
        # A half-written artifact must not be picked up by generation later.
        (folder / METADATA_FILE).unlink(missing_ok=True)
        raise
    return folder


class SubjectTrainer:
    """Trains one of the user's subjects with ``method`` (an ``Engine.train`` method)."""

    modality: Modality = "image"
    stoppable = True

    def __init__(self, method: str) -> None:
        self.method = method

    def train(self, request: TrainRequest, tools: Tools) -> Path:
        if request.subject is None:
            raise ValueError(f"{self.method} trains a subject: name one (--subject)")
        settings = request.settings or SubjectTrainingSettings()
        if not isinstance(settings, SubjectTrainingSettings):
            raise TypeError(f"{self.method} takes SubjectTrainingSettings settings")
        if request.steps is not None:
            settings = replace(settings, steps=request.steps)
        return train_subject(
            tools.store,
            request.user_id,
            request.subject,
            tools.image_model,
            self.method,
            settings,
            request.should_stop,
            request.on_step,
        )
