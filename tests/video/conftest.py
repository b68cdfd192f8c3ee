"""Tiny random models for video and posts: the image fixtures (tests/image/conftest.py) and a
motion adapter shaped for the tiny UNet, saved to a folder and loaded back through pgen's own
loading code."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders.video_models import save_random_motion_adapter
from tests.image.conftest import (  # noqa: F401  (fixtures, shared)
    reference_images,
    tiny_clip,
    tiny_dino,
    tiny_sd,
)


@pytest.fixture(scope="session")
def tiny_motion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MotionAdapter folder for the tiny UNet; clips of at most 8 frames."""
    return save_random_motion_adapter(tmp_path_factory.mktemp("tiny-motion"), max_frames=8)
