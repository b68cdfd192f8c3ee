"""What DreamBooth-LoRA and textual inversion share: the training settings, reference image
preparation, and the denoising loss of a latent diffusion model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from pgen.models.image import DiffusersImageModel

METADATA_FILE = "pgen_subject.json"


@dataclass(frozen=True)
class SubjectTrainingConfig:
    """Settings of one subject's training run. ``learning_rate`` None picks the method's
    usual value (1e-4 for LoRA, 5e-4 for textual inversion)."""

    steps: int = 400
    learning_rate: float | None = None
    batch_size: int = 1
    rank: int = 4  # LoRA rank
    resolution: int | None = None  # None: the model's native resolution
    token: str | None = None  # None: "sks" for DreamBooth, "<name>" for textual inversion
    prior_preservation: bool = False
    class_images: int = 100
    prior_loss_weight: float = 1.0
    class_steps: int = 30  # sampling steps for the generated class images
    seed: int = 0


def load_reference_images(paths: Sequence[str | Path]) -> list[Image.Image]:
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(ImageOps.exif_transpose(image).convert("RGB"))
        except (OSError, ValueError) as error:
            raise ValueError(f"reference image {path}: cannot be read ({error})") from None
    return images


def to_pixels(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """Center square crops resized to ``size``, as a (n, 3, size, size) tensor in [-1, 1]."""
    arrays = []
    for image in images:
        square = ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)
        arrays.append(np.asarray(square, dtype=np.float32) / 127.5 - 1.0)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def encode_latents(model: DiffusersImageModel, pixels: torch.Tensor) -> torch.Tensor:
    """Latents of the images, scaled as the UNet expects (computed once: the VAE is frozen)."""
    vae = model.pipe.vae
    with torch.no_grad():
        pixels = pixels.to(model.device, dtype=vae.dtype)
        latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
    return latents.float()


def tokenize(model: DiffusersImageModel, prompts: Sequence[str]) -> torch.Tensor:
    tokenizer = model.pipe.tokenizer
    ids = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return ids.to(model.device)


def text_states(model: DiffusersImageModel, ids: torch.Tensor) -> torch.Tensor:
    return model.pipe.text_encoder(ids)[0]


def denoising_loss(
    model: DiffusersImageModel,
    latents: torch.Tensor,
    states: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Per-image MSE between the UNet's prediction and its target at a random timestep."""
    scheduler = model.pipe.scheduler
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    steps = torch.randint(
        0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator
    ).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, steps)
    unet = model.pipe.unet
    with _autocast(model):
        prediction = unet(noisy.to(unet.dtype), steps, states.to(unet.dtype)).sample
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, steps)
    else:
        target = noise
    loss = F.mse_loss(prediction.float(), target.float(), reduction="none")
    return loss.mean(dim=(1, 2, 3))


def _autocast(model: DiffusersImageModel) -> Any:
    """Half-precision models train their float32 parameters under autocast."""
    enabled = model.device.type == "cuda" and model.dtype != torch.float32
    return torch.autocast(model.device.type, dtype=model.dtype, enabled=enabled)


def check_trainable(model: DiffusersImageModel, method: str) -> None:
    if model.is_sdxl:
        raise ValueError(
            f"{method} training supports Stable Diffusion 1.x/2.x pipelines; {model.name} is SDXL "
            "(use the ip-adapter method, or train with the diffusers SDXL scripts)"
        )


def images_digest(paths: Sequence[str | Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def write_metadata(folder: Path, **fields: Any) -> dict[str, Any]:
    """The facts generation needs (method, token, class word) next to the weights."""
    data = {
        key: asdict(value) if hasattr(value, "__dataclass_fields__") else value
        for key, value in fields.items()
    }
    (folder / METADATA_FILE).write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    return data


def read_metadata(folder: Path) -> dict[str, Any]:
    path = folder / METADATA_FILE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a pgen subject artifact ({error})") from None
