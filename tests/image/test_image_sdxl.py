"""The SDXL family through the same backend: loading, seeds, pooled-embedding blending and
IP-Adapter and DreamBooth-LoRA on a tiny SDXL pipeline; textual inversion says clearly that it
is SD 1.x/2.x only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

from pgen.context import Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.models.image import DiffusersImageModel, ImageGenerationSettings, load_image_model
from pgen.personalize.subject import IPAdapterSpec, generate_subject
from pgen.training.subject_artifacts import SubjectTrainingSettings
from pgen.training.subject_trainer import train_subject
from tests.builders.image_models import save_random_ip_adapter

FAST = ImageGenerationSettings(steps=2, guidance_scale=2.0)


@pytest.fixture(scope="module")
def xl(tiny_sdxl: Path) -> DiffusersImageModel:
    return load_image_model(str(tiny_sdxl), dtype="float32")


def _pixels(image: object) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_sdxl_loads_and_generates_deterministically(xl: DiffusersImageModel) -> None:
    assert xl.is_sdxl and xl.resolution == 32
    first, second = xl.generate(["a dog", "a dog"], FAST)
    assert first.size == (32, 32)
    np.testing.assert_allclose(_pixels(first), _pixels(second), atol=1)


def test_sdxl_blending_mixes_pooled_and_token_embeddings(xl: DiffusersImageModel) -> None:
    encoded = xl.encode("a dog")
    assert set(encoded) == {
        "prompt_embeds",
        "negative_prompt_embeds",
        "pooled_prompt_embeds",
        "negative_pooled_prompt_embeds",
    }
    plain = xl.generate(["a dog"], FAST)[0]
    at_zero = xl.generate_blended("a dog", "neon noir", 0.0, FAST)[0]
    at_one = xl.generate_blended("a dog", "neon noir", 1.0, FAST)[0]
    other = xl.generate(["neon noir"], FAST)[0]
    np.testing.assert_allclose(_pixels(at_zero), _pixels(plain), atol=1)
    np.testing.assert_allclose(_pixels(at_one), _pixels(other), atol=1)


def test_sdxl_ip_adapter_and_training_message(
    xl: DiffusersImageModel, tiny_sdxl: Path, tmp_path: Path, reference_images: list[Path]
) -> None:
    unet = UNet2DConditionModel.from_pretrained(tiny_sdxl / "unet")
    repo = save_random_ip_adapter(
        unet, tmp_path / "ip", subfolder="sdxl_models", weight_name="ip-adapter_sdxl.safetensors"
    )
    spec = IPAdapterSpec.for_model(xl, str(repo))
    assert (spec.subfolder, spec.weight_name) == ("sdxl_models", "ip-adapter_sdxl.safetensors")
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    paths = [str(p) for p in reference_images]
    store.add(
        [
            User(user_id="ana"),
            Subject(user_id="ana", name="rex", class_word="dog", image_paths=paths),
        ]
    )
    out = generate_subject(store, "ana", "rex in the snow", xl, FAST, ip_adapter=spec)
    plain = xl.generate(["dog in the snow"], FAST)[0]
    assert out.provenance["method"] == "ip-adapter"
    assert np.abs(_pixels(out.images[0]) - _pixels(plain)).mean() > 0.1
    with pytest.raises(ValueError, match=r"supports Stable Diffusion 1\.x/2\.x pipelines"):
        train_subject(
            store, "ana", "rex", xl, "textual-inversion", SubjectTrainingSettings(steps=1)
        )


def test_sdxl_dreambooth_lora_loads_in_plain_diffusers(
    xl: DiffusersImageModel, tiny_sdxl: Path, tmp_path: Path, reference_images: list[Path]
) -> None:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    paths = [str(p) for p in reference_images]
    store.add(
        [
            User(user_id="ana"),
            Subject(user_id="ana", name="rex", class_word="dog", image_paths=paths),
        ]
    )
    config = SubjectTrainingSettings(
        steps=2, learning_rate=1e-2, prior_preservation=True, class_images=1, class_steps=2
    )
    folder = train_subject(store, "ana", "rex", xl, "dreambooth-lora", config)
    plain = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    plain.set_progress_bar_config(disable=True)
    plain.load_lora_weights(str(folder))
    adapted = plain(
        "a sks dog",
        num_inference_steps=2,
        guidance_scale=2.0,
        height=32,
        width=32,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    out = generate_subject(store, "ana", "a rex", xl, FAST)
    assert out.provenance["method"] == "dreambooth-lora" and out.prompt == "a sks dog"
    np.testing.assert_allclose(_pixels(out.images[0]), _pixels(adapted), atol=2)
    base = xl.generate(["a sks dog"], FAST)[0]
    assert np.abs(_pixels(base) - _pixels(adapted)).mean() > 0.1
