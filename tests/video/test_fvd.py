"""FVD with a video feature network that installs as a folder (a tiny random VideoMAE here):
zero for a set against itself, larger for a shifted set than for another sample of the same
kind, and ``pgen eval-videos --fvd-network --real-clips`` reports it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgen.cli.main import main
from pgen.evaluate.metrics.video import TransformersVideoNetwork, fvd
from pgen.models.video import Video


@pytest.fixture(scope="module")
def tiny_videomae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import VideoMAEConfig, VideoMAEImageProcessor, VideoMAEModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-videomae")
    config = VideoMAEConfig(
        image_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
    )
    VideoMAEModel(config).save_pretrained(folder)
    crop = {"height": 32, "width": 32}
    VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size=crop).save_pretrained(folder)
    return folder


def _moving(seed: int, frames: int = 6) -> list[Image.Image]:
    """A soft colour blob drifting across a dark frame."""
    rng = np.random.default_rng(seed)
    colour, start, step = rng.uniform(80, 255, 3), rng.uniform(4, 28, 2), rng.uniform(-3, 3, 2)
    yy, xx = np.mgrid[0:32, 0:32]
    clip = []
    for t in range(frames):
        cy, cx = start + t * step
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0)[..., None] * colour
        clip.append(Image.fromarray(blob.clip(0, 255).astype(np.uint8)))
    return clip


def _noise(seed: int, frames: int = 6) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(frames)
    ]


def test_fvd_is_zero_against_itself_and_grows_with_a_shift(tiny_videomae: Path) -> None:
    network = TransformersVideoNetwork(str(tiny_videomae))
    real = [_moving(s) for s in range(8)]
    same_kind = [_moving(100 + s) for s in range(8)]
    shifted = [_noise(200 + s) for s in range(8)]
    assert abs(fvd(real, real, network)) < 1e-6
    near, far = fvd(real, same_kind, network), fvd(real, shifted, network)
    assert 0 < near < far
    assert network.clips(real[:3]).shape == (3, 32)  # 6 frames resampled to the model's 4


def test_eval_videos_reports_fvd(
    tmp_path: Path, tiny_videomae: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made, real = tmp_path / "made", tmp_path / "real"
    made.mkdir()
    real.mkdir()
    for s in range(3):
        Video(_noise(s), 6).save(made / f"{s}.gif")
        Video(_moving(s), 6).save(real / f"{s}.gif")
    base = ["eval-videos", "--clips", str(made), "--clip-model", "none", "--dino-model", "none"]
    fvd_args = ["--fvd-network", str(tiny_videomae), "--real-clips", str(real)]
    assert main([*base, *fvd_args, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["clips"] == 3 and metrics["fvd"] > 0
    assert main([*base, "--fvd-network", str(tiny_videomae)]) == 1
    assert "FVD takes both --fvd-network and --real-clips" in capsys.readouterr().err
