"""Cooperative cancellation of training: a trainer asks ``should_stop()`` between
optimizer steps and, when told to, raises ``TrainingCancelled`` before anything is saved
(an adapter's metadata is written last, so a stopped run leaves no artifact)."""

from __future__ import annotations

from collections.abc import Callable

StopCheck = Callable[[], bool]


class TrainingCancelled(Exception):
    """Training was asked to stop; nothing was saved."""


def stop_if_asked(should_stop: StopCheck | None) -> None:
    if should_stop is not None and should_stop():
        raise TrainingCancelled("training was cancelled")
