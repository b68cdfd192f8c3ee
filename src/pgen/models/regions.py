"""Several of a user's subjects in one image: their adapters composed, and a method that
keeps their identities apart.

- ``stack`` (the naive baseline): every subject's adapter loaded at once (LoRAs stacked
  with per-adapter weights, textual-inversion tokens side by side), one prompt naming all.
- ``regions`` (sequential inpainting, in the spirit of MuDI's per-subject separation): the
  stacked image first, then each subject's region (a vertical band, left to right in the
  order the instruction names them) repainted with that subject's adapter alone and its own
  phrase, the rest of the image kept by the inpainting mask. One subject's weights are never
  loaded while another subject's region is painted.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from pgen.models.base import AdapterRef, ImageGenerationSettings

if TYPE_CHECKING:
    from pgen.models.image import DiffusersImageModel

STACK = "stack"
REGIONS = "regions"
COMPOSE_METHODS = (STACK, REGIONS)


@dataclass(frozen=True)
class Region:
    """One subject's part of the image: its phrase, its adapter and its band (fractions of
    the width, left and right)."""

    subject: str
    prompt: str
    adapter: AdapterRef
    box: tuple[float, float]


def bands(count: int) -> list[tuple[float, float]]:
    """``count`` vertical bands side by side."""
    return [(k / count, (k + 1) / count) for k in range(count)]


@contextmanager
def stacked(
    model: DiffusersImageModel, adapters: Sequence[AdapterRef], weights: Sequence[float]
) -> Iterator[None]:
    """Every adapter loaded at once, for this block only: LoRAs under their own names with
    their weights, textual-inversion embeddings each under its token."""
    pipe = model.pipe
    with model.lock, ExitStack() as undo:
        names, scales = [], []
        for index, (adapter, weight) in enumerate(zip(adapters, weights, strict=True)):
            folder = _folder(adapter)
            if adapter.kind == "dreambooth-lora":
                name = f"pgen{index}"
                with warnings.catch_warnings():  # several adapters in one model: the point
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    pipe.load_lora_weights(str(folder), adapter_name=name)
                names.append(name)
                scales.append(weight)
            elif adapter.kind == "textual-inversion":
                tokens = model.load_textual_inversion(folder / adapter.settings["weights"])
                undo.callback(model.unload_textual_inversion, tokens)
            else:
                raise ValueError(f"cannot stack a {adapter.kind!r} adapter")
        if names:
            pipe.set_adapters(names, adapter_weights=scales)
            undo.callback(pipe.unload_lora_weights)
        yield


def _folder(adapter: AdapterRef) -> Path:
    if adapter.path is None:
        raise ValueError(f"adapter {adapter.name!r} ({adapter.kind}) has no folder")
    return adapter.path


def band_mask(size: tuple[int, int], box: tuple[float, float]) -> Image.Image:
    """White (repaint) inside the band, black (keep) elsewhere."""
    width, height = size
    mask = Image.new("L", size, 0)
    left, right = round(box[0] * width), round(box[1] * width)
    mask.paste(255, (left, 0, right, height))
    return mask


def render_subjects(
    model: DiffusersImageModel,
    prompt: str,
    regions: Sequence[Region],
    weights: Sequence[float],
    method: str,
    config: ImageGenerationSettings | None = None,
    strength: float = 0.8,
) -> list[Image.Image]:
    """The image of several subjects by ``method`` (``stack`` or ``regions``)."""
    if method not in COMPOSE_METHODS:
        raise ValueError(f"unknown compose method {method!r}; expected one of {COMPOSE_METHODS}")
    config = config or ImageGenerationSettings()
    with stacked(model, [r.adapter for r in regions], weights):
        images = model.generate([prompt], config)
    if method == STACK:
        return images
    from diffusers import StableDiffusionInpaintPipeline

    inpaint: Any = StableDiffusionInpaintPipeline.from_pipe(model.pipe)
    inpaint.set_progress_bar_config(disable=True)
    result = []
    for image in images:
        for region in regions:  # one subject's weights at a time, in its own band
            with model.applied(region.adapter):
                import torch

                image = inpaint(
                    prompt=region.prompt,
                    image=image,
                    mask_image=band_mask(image.size, region.box),
                    height=image.size[1],
                    width=image.size[0],
                    strength=strength,
                    num_inference_steps=config.steps,
                    guidance_scale=config.guidance_scale,
                    generator=torch.Generator("cpu").manual_seed(config.seed),
                ).images[0]
        result.append(image)
    return result
