"""What DreamBooth-LoRA and textual inversion share: the training settings, reference image
preparation, and the denoising loss of a latent diffusion model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from pgen.models.image import DiffusersImageModel


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


Conditioning = dict[str, torch.Tensor]  # UNet keyword inputs, one row per image


def prompt_conditioning(model: DiffusersImageModel, prompt: str, size: int) -> Conditioning:
    """The frozen UNet conditioning of one prompt: text-encoder states, and for SDXL also
    the pooled text embedding and the size/crop time ids of its added conditioning."""
    with torch.no_grad():
        if not model.is_sdxl:
            return {"encoder_hidden_states": text_states(model, tokenize(model, [prompt]))}
        states, _, pooled, _ = model.pipe.encode_prompt(
            prompt=prompt,
            device=model.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )
    # Trained at full size, uncropped: (original h, w, crop top, left, target h, w).
    time_ids = torch.tensor([[size, size, 0, 0, size, size]], device=model.device)
    return {"encoder_hidden_states": states, "text_embeds": pooled, "time_ids": time_ids}


def repeat_rows(*parts: tuple[Conditioning, int]) -> Conditioning:
    """Each conditioning repeated for its number of images, stacked in order."""
    first = parts[0][0]
    return {
        key: torch.cat([c[key].expand(n, *c[key].shape[1:]) for c, n in parts]) for key in first
    }


def denoising_loss(
    model: DiffusersImageModel,
    latents: torch.Tensor,
    conditioning: Conditioning,
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
    inputs = {key: value.to(unet.dtype) for key, value in conditioning.items()}
    states = inputs.pop("encoder_hidden_states")
    with _autocast(model):
        prediction = unet(noisy.to(unet.dtype), steps, states, added_cond_kwargs=inputs).sample
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, steps)
    else:
        target = noise
    loss = F.mse_loss(prediction.float(), target.float(), reduction="none")
    return loss.mean(dim=(1, 2, 3))


def _autocast(model: DiffusersImageModel) -> Any:
    """Half-precision models train their float32 adapter parameters under autocast."""
    half = model.dtype != torch.float32
    if model.device.type == "cpu":
        half = model.dtype == torch.bfloat16  # the only half type CPU autocast supports
    return torch.autocast(model.device.type, dtype=model.dtype, enabled=half)


def check_trainable(model: DiffusersImageModel, method: str) -> None:
    if model.is_sdxl:
        raise ValueError(
            f"{method} training supports Stable Diffusion 1.x/2.x pipelines; {model.name} is SDXL "
            "(SDXL has two text encoders to invert; use dreambooth-lora or ip-adapter)"
        )
