"""A randomly initialized AnimateDiff ``MotionAdapter`` shaped for the tiny SD UNet of
``image_models.random_sd_pipeline("tiny")`` (block channels 8 and 16, one layer per block,
4 norm groups), or for SD 1.5 (``sd15``, the shapes of guoyww's v1-5-2 adapter)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def random_motion_adapter(preset: str = "tiny", seed: int = 5, max_frames: int = 8) -> Any:
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    if preset == "sd15":
        return MotionAdapter(motion_max_seq_length=32, use_motion_mid_block=True)
    adapter: Any = MotionAdapter(
        block_out_channels=(8, 16),
        motion_layers_per_block=1,
        motion_num_attention_heads=2,
        motion_norm_num_groups=4,
        motion_max_seq_length=max_frames,
        use_motion_mid_block=False,
    )
    # diffusers zero-initializes each motion layer's output projection (a fresh adapter
    # leaves frames independent); tiny weights there make the motion module do something.
    with torch.no_grad():
        for name, parameter in adapter.named_parameters():
            if "proj_out" in name:
                parameter.normal_(0.0, 0.05)
    return adapter


def save_random_motion_adapter(folder: Path, preset: str = "tiny", max_frames: int = 8) -> Path:
    random_motion_adapter(preset, max_frames=max_frames).save_pretrained(folder)
    return folder
