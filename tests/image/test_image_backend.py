"""The diffusers backend, loaded from a tiny pipeline folder through load_image_model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pgen.models.image import (
    DiffusersImageModel,
    ImageGenerationSettings,
    ImageModel,
    load_image_model,
    resolve_dtype,
)

FAST = ImageGenerationSettings(steps=2, guidance_scale=2.0)


@pytest.fixture(scope="module")
def model(tiny_sd: Path) -> DiffusersImageModel:
    return load_image_model(str(tiny_sd), device="cpu", dtype="float32")


def _pixels(image: object) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_loads_a_pipeline_folder_and_generates_native_size(model: DiffusersImageModel) -> None:
    assert isinstance(model, ImageModel)
    assert model.resolution == 32
    assert not model.is_sdxl
    images = model.generate(["a photo of a dog", "a cat"], ImageGenerationSettings(steps=2))
    assert [image.size for image in images] == [(32, 32), (32, 32)]


def test_same_seed_same_image_and_images_independent_of_batch(
    model: DiffusersImageModel,
) -> None:
    config = ImageGenerationSettings(steps=2, images_per_prompt=2, seed=7)
    first = model.generate(["a dog", "a cat"], config)
    again = model.generate(["a cat"], config)
    assert len(first) == 4
    np.testing.assert_allclose(_pixels(first[2]), _pixels(again[0]), atol=1)
    np.testing.assert_allclose(_pixels(first[3]), _pixels(again[1]), atol=1)
    # Image k uses seed + k: two images of one prompt differ.
    assert np.abs(_pixels(first[0]) - _pixels(first[1])).mean() > 1


def test_blended_conditioning_interpolates_between_prompts(model: DiffusersImageModel) -> None:
    target = model.generate(["a dog"], FAST)[0]
    at_zero = model.generate_blended("a dog", "watercolor, pastel", 0.0, FAST)[0]
    at_half = model.generate_blended("a dog", "watercolor, pastel", 0.5, FAST)[0]
    np.testing.assert_allclose(_pixels(at_zero), _pixels(target), atol=1)
    assert np.abs(_pixels(at_half) - _pixels(target)).mean() > 0.5
    with pytest.raises(ValueError, match="between 0 and 1"):
        model.generate_blended("a dog", "x", 1.5, FAST)


def test_load_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_image_model(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"model_index\.json"):
        load_image_model(str(tmp_path))
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float8", "cpu")
    assert resolve_dtype("auto", "cuda:0").itemsize == 2


def test_random_builders_match_the_clip_vocabulary_layout() -> None:
    from tests.builders.image_models import clip_byte_tokenizer, random_sd_pipeline

    tokenizer = clip_byte_tokenizer(vocab_size=49408)
    assert len(tokenizer) == 49408  # SD 1.5's text encoder table
    assert tokenizer.convert_ids_to_tokens([49406, 49407]) == ["<|startoftext|>", "<|endoftext|>"]
    ids = tokenizer("a photo of a dog").input_ids
    assert ids[0] == 49406 and ids[-1] == 49407
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == "a photo of a dog"
    with pytest.raises(ValueError, match="unknown preset"):
        random_sd_pipeline("sdxl")


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_single_files_dispatch_by_their_keys_and_take_a_local_config(
    tmp_path: Path, tiny_sd: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """diffusers cannot write a tiny pipeline in the original single-file layout, so its
    from_single_file is replaced by a recorder; what pgen decides is checked: the family
    from the checkpoint's keys (.ckpt included) and the config passed on."""
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from safetensors.torch import save_file

    calls: list[tuple[str, str, dict[str, object]]] = []
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)

    def recorder(name: str) -> object:
        def from_single_file(path: str, **kwargs: object) -> object:
            calls.append((name, path, kwargs))
            return pipe

        return from_single_file

    monkeypatch.setattr(StableDiffusionPipeline, "from_single_file", recorder("sd"))
    monkeypatch.setattr(StableDiffusionXLPipeline, "from_single_file", recorder("sdxl"))
    tensor = torch.zeros(1)
    for family, key in (
        ("sd", "model.diffusion_model.input_blocks.0.0.weight"),
        ("sdxl", "conditioner.embedders.1.model.text_projection"),
    ):
        path = tmp_path / f"{family}{suffix}"
        if suffix == ".safetensors":
            save_file({key: tensor, "first_stage_model.x": torch.ones(1)}, str(path))
        else:  # Lightning checkpoints nest the weights under state_dict
            torch.save({"state_dict": {key: tensor}, "global_step": 1}, path)
        model = load_image_model(str(path), dtype="float32", config=str(tiny_sd))
        assert model.name == str(path)
        name, loaded, kwargs = calls[-1]
        assert (name, loaded) == (family, str(path))
        assert kwargs["config"] == str(tiny_sd) and kwargs["dtype"] == torch.float32
    load_image_model(str(path), config="stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert calls[-1][2]["config"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    load_image_model(str(path))
    assert "config" not in calls[-1][2]
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"broken\.ckpt: not a readable checkpoint"):
        load_image_model(str(broken), config=str(tiny_sd))
