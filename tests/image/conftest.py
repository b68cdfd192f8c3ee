"""Tiny random diffusion, CLIP, DINO and IP-Adapter models, built once per session (the
tiny Llama text model, offline mode and one torch thread come from tests/conftest.py).

Each is saved with ``save_pretrained`` to a folder and loaded back through pgen's own
loading code (a local path instead of a Hub id), so the real loading path is what runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.builders.image_models import (
    clip_byte_tokenizer,
    image_processor,
    random_sd_pipeline,
    random_sdxl_pipeline,
    save_random_ip_adapter,
    text_encoder_config,
)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Stable Diffusion 1.x-shaped pipeline folder, 32x32 images."""
    path = tmp_path_factory.mktemp("tiny-sd")
    random_sd_pipeline("tiny").save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SDXL-shaped pipeline folder (two text encoders, added conditioning), 32x32."""
    path = tmp_path_factory.mktemp("tiny-sdxl")
    random_sdxl_pipeline().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig

    torch.manual_seed(1)
    tokenizer = clip_byte_tokenizer(max_length=32)
    config = CLIPConfig(
        text_config=text_encoder_config("tiny", len(tokenizer), 32).to_dict(),
        vision_config=CLIPVisionConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
        ).to_dict(),
        projection_dim=16,
    )
    path = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    image_processor(32).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_dino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import ViTConfig, ViTModel
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    torch.manual_seed(2)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
    )
    path = tmp_path_factory.mktemp("tiny-dino")
    ViTModel(config, add_pooling_layer=False).save_pretrained(path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_ip_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_sd: Path) -> Path:
    """An IP-Adapter repository laid out like h94/IP-Adapter, shaped for the tiny UNet."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_sd / "unet")
    return save_random_ip_adapter(unet, tmp_path_factory.mktemp("tiny-ip-adapter"), seed=3)


def _random_image(seed: int, size: int = 40) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(4, 4, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((size, size + 8), Image.Resampling.BILINEAR)


@pytest.fixture(scope="session")
def reference_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small, non-square reference photos of a 'subject'."""
    folder = tmp_path_factory.mktemp("rex")
    paths = []
    for i in range(3):
        path = folder / f"{i:02d}.jpg"
        _random_image(i).save(path)
        paths.append(path)
    return paths
