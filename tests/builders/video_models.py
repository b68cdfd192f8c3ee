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


def save_random_clip(folder: Path, seed: int = 1) -> Path:
    """A tiny random CLIP (32x32 images, the byte tokenizer) saved with its processor: the
    shape of the metrics' encoder, for benchmarks that measure plumbing only."""
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig

    from tests.builders.image_models import (
        clip_byte_tokenizer,
        image_processor,
        text_encoder_config,
    )

    torch.manual_seed(seed)
    tokenizer = clip_byte_tokenizer(max_length=32)
    vision = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
    )
    config = CLIPConfig(
        text_config=text_encoder_config("tiny", len(tokenizer), 32).to_dict(),
        vision_config=vision.to_dict(),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor(32).save_pretrained(folder)
    return folder
