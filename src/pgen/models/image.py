"""The image model backend: diffusers text-to-image pipelines of the Stable Diffusion 1.x/2.x
and SDXL families, from a Hugging Face id, a local pipeline folder or a single checkpoint file.

Personalization enters through the standard diffusers loaders (LoRA, textual inversion,
IP-Adapter) and through prompt embeddings, so every artifact pgen trains also loads in plain
diffusers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from pgen.models.base import AdapterRef, ImageGenerationSettings, ImageModel

__all__ = ["DiffusersImageModel", "ImageGenerationSettings", "ImageModel", "ImageOutput"]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class ImageOutput:
    """Images made for one request, with the prompt that made them and which context items
    (subjects, reference images, interacted items, artifacts) shaped them."""

    images: list[Image.Image]
    prompt: str
    strategy: str
    provenance: dict[str, Any] = field(default_factory=dict)


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """``auto`` is float16 on CUDA (the usual inference setting) and float32 elsewhere."""
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected auto or one of {sorted(DTYPES)}")
    return DTYPES[name]


class DiffusersImageModel:
    """One loaded diffusers pipeline, with its personalization loaders."""

    def __init__(self, pipe: Any, name: str) -> None:
        self.lock = threading.RLock()
        self.pipe = pipe
        self.name = name

    # -- facts about the loaded model -------------------------------------------------
    @property
    def device(self) -> torch.device:
        return torch.device(self.pipe.device)

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.unet.dtype

    @property
    def is_sdxl(self) -> bool:
        return getattr(self.pipe, "text_encoder_2", None) is not None

    @property
    def resolution(self) -> int:
        """Native image side in pixels (512 for SD 1.5, 1024 for SDXL)."""
        return int(self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor)

    # -- generation -------------------------------------------------------------------
    def _call(self, config: ImageGenerationSettings, **inputs: Any) -> list[Image.Image]:
        """One pipeline call for one prompt (text or embeddings)."""
        n = config.images_per_prompt
        # CPU generators give the same noise on every device for the same seed.
        generators = [torch.Generator("cpu").manual_seed(config.seed + k) for k in range(n)]
        result = self.pipe(
            num_inference_steps=config.steps,
            guidance_scale=config.guidance_scale,
            height=config.height or self.resolution,
            width=config.width or self.resolution,
            num_images_per_prompt=n,
            generator=generators,
            output_type="pil",
            **inputs,
        )
        return list(result.images)

    def generate(
        self,
        prompts: Sequence[str],
        config: ImageGenerationSettings | None = None,
        *,
        ip_adapter_images: Sequence[Image.Image] | None = None,
        identity: Any = None,
    ) -> list[Image.Image]:
        """``identity``: a face identity vector for a loaded IP-Adapter-FaceID."""
        config = config or ImageGenerationSettings()
        images: list[Image.Image] = []
        # One prompt per call: the images of a prompt must not depend on its batch mates.
        for prompt in prompts:
            inputs: dict[str, Any] = {"prompt": prompt, "negative_prompt": config.negative_prompt}
            if ip_adapter_images is not None:
                inputs["ip_adapter_image"] = [list(ip_adapter_images)]
            if identity is not None:
                from pgen.models.face_id import identity_embeds

                guided = config.guidance_scale > 1  # the pipelines' classifier-free guidance
                embeds = identity_embeds(identity, guided, self.device, self.dtype)
                inputs["ip_adapter_image_embeds"] = embeds
            images += self._call(config, **inputs)
        return images

    def encode(self, prompt: str, negative_prompt: str | None = None) -> dict[str, torch.Tensor]:
        """The pipeline's conditioning for one prompt, as keyword arguments of its __call__."""
        with torch.no_grad():
            encoded = self.pipe.encode_prompt(
                prompt=prompt,
                device=self.device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=True,
                negative_prompt=negative_prompt,
            )
        names = ["prompt_embeds", "negative_prompt_embeds"]
        if self.is_sdxl:
            names += ["pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
        return dict(zip(names, encoded, strict=True))

    def generate_blended(
        self,
        target: str,
        preference: str,
        weight: float,
        config: ImageGenerationSettings | None = None,
    ) -> list[Image.Image]:
        """Images conditioned on ``(1 - weight) * E(target) + weight * E(preference)``,
        where E is the text encoder: the preference/target mix of PMG."""
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be between 0 and 1, got {weight}")
        config = config or ImageGenerationSettings()
        target_inputs = self.encode(target, config.negative_prompt)
        preference_inputs = self.encode(preference, config.negative_prompt)
        inputs = {
            name: torch.lerp(value, preference_inputs[name], weight)
            if name.startswith(("prompt", "pooled"))
            else value  # the negative conditioning stays the target's
            for name, value in target_inputs.items()
        }
        return self._call(config, **inputs)

    # -- personalization loaders (standard diffusers formats) ----------------------------
    def load_lora(self, path: str | Path, scale: float = 1.0) -> None:
        from diffusers.utils import logging as diffusers_logging

        # UNet-only LoRAs make diffusers warn that the text encoder got no keys: expected.
        level = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()
        try:
            self.pipe.load_lora_weights(str(path), adapter_name="pgen")
        finally:
            diffusers_logging.set_verbosity(level)
        self.pipe.set_adapters(["pgen"], adapter_weights=[scale])

    def unload_lora(self) -> None:
        self.pipe.unload_lora_weights()

    def load_textual_inversion(self, path: str | Path) -> list[str]:
        """Load learned embeddings; returns the tokens they were saved under."""
        before = set(self.pipe.tokenizer.get_vocab())
        self.pipe.load_textual_inversion(str(path))
        return sorted(set(self.pipe.tokenizer.get_vocab()) - before)

    def unload_textual_inversion(self, tokens: Sequence[str]) -> None:
        self.pipe.unload_textual_inversion(list(tokens))

    def load_ip_adapter(
        self, repo: str, subfolder: str, weight_name: str, scale: float = 0.6
    ) -> None:
        self.pipe.load_ip_adapter(repo, subfolder=subfolder, weight_name=weight_name)
        self.pipe.set_ip_adapter_scale(scale)

    def unload_ip_adapter(self) -> None:
        self.pipe.unload_ip_adapter()

    @contextmanager
    def face_id(self, spec: dict[str, Any]) -> Iterator[Any]:
        """IP-Adapter-FaceID loaded from ``spec["weights"]`` (a file) without an image
        encoder, for one block; yields the identity vector, checked against the size the
        loaded projection takes."""
        from diffusers.utils import logging as diffusers_logging

        from pgen.models.face_id import loaded_dim, unload_faceid

        weights = Path(spec["weights"])
        # Without an image encoder diffusers warns that ip_adapter_image cannot be used:
        # expected, FaceID takes the identity as ip_adapter_image_embeds.
        level = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()
        try:
            self.pipe.load_ip_adapter(
                str(weights.parent), "", weights.name, image_encoder_folder=None
            )
        finally:
            diffusers_logging.set_verbosity(level)
        try:
            self.pipe.set_ip_adapter_scale(spec["scale"])
            identity = spec["identity"]
            if len(identity) != loaded_dim(self.pipe):
                raise ValueError(
                    f"FaceID weights {weights} take {loaded_dim(self.pipe)}-d identities, "
                    f"given {len(identity)}-d"
                )
            yield identity
        finally:
            unload_faceid(self.pipe)

    def render(
        self,
        prompt: str,
        config: ImageGenerationSettings | None = None,
        adapter: AdapterRef | None = None,
        blend: tuple[str, float] | None = None,
    ) -> list[Image.Image]:
        """Images for one prepared request: its prompt, with its adapter applied for this
        request only; ``blend`` (a preference prompt and its weight) mixes the conditioning
        of the prompt and the preference (see ``generate_blended``)."""
        with self.applied(adapter) as extra:
            if blend is not None:
                return self.generate_blended(prompt, blend[0], blend[1], config)
            return self.generate([prompt], config, **extra)

    @contextmanager
    def applied(self, adapter: AdapterRef | None) -> Iterator[dict[str, Any]]:
        """The pipeline with one request's adapter loaded, for that request only; yields
        the extra ``generate`` arguments it needs. Requests hold the model's lock for the
        whole block: loaded weights are pipeline state, and another thread's request must
        never run with them (or see them half unloaded)."""
        with self.lock:
            if adapter is None:
                yield {}
            elif adapter.kind == "dreambooth-lora":
                self.load_lora(_folder(adapter))
                try:
                    yield {}
                finally:
                    self.unload_lora()
            elif adapter.kind == "textual-inversion":
                tokens = self.load_textual_inversion(_folder(adapter) / adapter.settings["weights"])
                try:
                    yield {}
                finally:
                    self.unload_textual_inversion(tokens)
            elif adapter.kind == "ip-adapter":
                spec = adapter.settings
                self.load_ip_adapter(
                    spec["repo"], spec["subfolder"], spec["weight_name"], spec["scale"]
                )
                try:
                    yield {"ip_adapter_images": spec["images"]}
                finally:
                    self.unload_ip_adapter()
            elif adapter.kind == "face-id":
                with self.face_id(adapter.settings) as identity:
                    yield {"identity": identity}
            else:
                raise ValueError(f"the image backend cannot apply a {adapter.kind!r} adapter")


def _folder(adapter: AdapterRef) -> Path:
    if adapter.path is None:
        raise ValueError(f"adapter {adapter.name!r} ({adapter.kind}) has no folder")
    return adapter.path


def checkpoint_keys(path: Path) -> list[str]:
    """The tensor names of a single-file checkpoint: ``.safetensors`` read lazily, ``.ckpt``
    / ``.pt`` / ``.pth`` unpickled with tensors only (Lightning nests them under
    ``state_dict``)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    try:
        # mmap: a 4-7 GB checkpoint is mapped, not read, to list its keys.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # pickle, zip and mmap errors differ by torch version
        raise ValueError(f"image model {path}: not a readable checkpoint ({error})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"image model {path}: holds no state dict")
    return [str(key) for key in state]


def _is_sdxl_checkpoint(path: Path) -> bool:
    """SDXL single-file checkpoints hold a second text encoder under ``conditioner.``."""
    return any(key.startswith("conditioner.embedders.1") for key in checkpoint_keys(path))


def _is_sd_family(pipe: object) -> bool:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return isinstance(pipe, StableDiffusionPipeline | StableDiffusionXLPipeline)


def load_image_model(
    spec: str,
    device: str = "cpu",
    dtype: str = "auto",
    local_files_only: bool | None = None,
    config: str | None = None,
) -> DiffusersImageModel:
    """Load a text-to-image pipeline from an HF id, a pipeline folder, or a single
    ``.safetensors``/``.ckpt`` checkpoint (SD 1.x/2.x or SDXL). A single file holds weights
    only: ``config`` (a pipeline folder or Hub id of the same family, e.g.
    ``stable-diffusion-v1-5/stable-diffusion-v1-5``) gives diffusers the component configs
    and tokenizers; without it diffusers guesses one and fetches it from the Hub."""
    from diffusers import (
        AutoPipelineForText2Image,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
    )

    torch_dtype = resolve_dtype(dtype, device)
    path = Path(spec).expanduser()
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    pipe: Any
    if local_files_only is not None:
        kwargs["local_files_only"] = local_files_only
    if path.is_file():
        cls = StableDiffusionXLPipeline if _is_sdxl_checkpoint(path) else StableDiffusionPipeline
        if config is not None:
            folder = Path(config).expanduser()
            kwargs["config"] = str(folder) if folder.is_dir() else config
        pipe = cls.from_single_file(str(path), **kwargs)
    elif spec.startswith((".", "/", "~")) and not path.is_dir():
        raise FileNotFoundError(f"image model {spec}: no such folder or file")
    else:
        if path.is_dir() and not (path / "model_index.json").is_file():
            raise ValueError(
                f"image model {path}: not a diffusers pipeline folder (no model_index.json)"
            )
        pipe = AutoPipelineForText2Image.from_pretrained(
            str(path) if path.is_dir() else spec, **kwargs
        )
    if not _is_sd_family(pipe):
        raise ValueError(
            f"image model {spec}: {type(pipe).__name__} is not a Stable Diffusion 1.x/2.x or "
            "SDXL text-to-image pipeline"
        )
    pipe.set_progress_bar_config(disable=True)
    return DiffusersImageModel(pipe.to(device), name=spec)
