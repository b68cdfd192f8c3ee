"""Image metrics on tiny CLIP and DINO models, checked against independent implementations
(torchmetrics' CLIP score, FID and KID formulas; scikit-image's SSIM and PSNR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pgen.evaluate.metrics.image import (
    ClipEncoder,
    DinoEncoder,
    clip_i,
    clip_t,
    dino_i,
    folder_distances,
    frechet_distance,
    image_folder,
    kernel_distance,
    mean_pairwise_cosine,
    psnr,
    ssim,
)


@pytest.fixture(scope="module")
def clip(tiny_clip: Path) -> ClipEncoder:
    return ClipEncoder(str(tiny_clip))


@pytest.fixture(scope="module")
def dino(tiny_dino: Path) -> DinoEncoder:
    return DinoEncoder(str(tiny_dino))


def _image(seed: int, size: tuple[int, int] = (32, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8))


def test_pairwise_cosine_is_the_mean_over_all_pairs() -> None:
    a = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    expected = np.mean([float(x @ y) for x in a for y in b])
    assert mean_pairwise_cosine(a, b) == pytest.approx(expected, abs=1e-6)
    same = np.mean([float(a[i] @ a[j]) for i in range(3) for j in range(3) if i != j])
    assert mean_pairwise_cosine(a, a, same_set=True) == pytest.approx(same, abs=1e-6)


def test_clip_i_and_dino_i_are_one_for_identical_sets_and_lower_otherwise(
    clip: ClipEncoder, dino: DinoEncoder
) -> None:
    same = [_image(1)]
    others = [_image(2), _image(3)]
    assert clip_i(same, same, clip) == pytest.approx(1.0, abs=1e-5)
    assert dino_i(same, same, dino) == pytest.approx(1.0, abs=1e-5)
    assert clip_i(same, others, clip) < 0.9999
    assert dino_i(same, others, dino) < 0.9999
    features = dino.images([*same, *others])
    assert features.shape == (3, 32)
    assert torch.allclose(features.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_clip_t_matches_torchmetrics_clip_score(tiny_clip: Path, clip: ClipEncoder) -> None:
    from torchmetrics.functional.multimodal import clip_score
    from transformers import CLIPModel, CLIPProcessor

    class TensorCLIP(CLIPModel):  # type: ignore[misc]
        """transformers 5 returns model outputs from get_*_features; torchmetrics 1.9
        expects the projected tensors the older API returned. Same weights, same math."""

        def get_image_features(self, *args: object, **kwargs: object) -> torch.Tensor:
            return super().get_image_features(*args, **kwargs).pooler_output

        def get_text_features(self, *args: object, **kwargs: object) -> torch.Tensor:
            return super().get_text_features(*args, **kwargs).pooler_output

    def load() -> tuple[CLIPModel, CLIPProcessor]:
        return TensorCLIP.from_pretrained(tiny_clip), CLIPProcessor.from_pretrained(tiny_clip)

    solid = [Image.new("RGB", (32, 32), color) for color in ("red", "black", "white")]
    images = [_image(4), _image(5), _image(6), *solid]
    prompts = ["a photo of a dog", "zzzz qqq", "the end"]
    model, processor = load()
    positive = 0
    for image in images:
        tensor = torch.from_numpy(np.asarray(image)).permute(2, 0, 1)
        for prompt in prompts:
            ours = clip_t([image], [prompt], clip)
            reference = float(
                clip_score(tensor, prompt, model_name_or_path=lambda: (model, processor))
            )
            # torchmetrics reports 100 * cosine, floored at 0.
            assert reference == pytest.approx(max(100 * ours, 0.0), abs=1e-3)
            positive += ours > 0
    assert 0 < positive < len(images) * len(prompts)  # both sides of the floor were checked
    # One image against its own prompt only, not against the other prompts.
    single = clip_t(images[:1], prompts[:1], clip)
    assert clip_t(images[:3], prompts, clip) == pytest.approx(
        np.mean([clip_t([i], [p], clip) for i, p in zip(images, prompts, strict=False)]), abs=1e-6
    )
    assert float(clip.images(images[:1])[0] @ clip.texts(prompts[:1])[0]) == pytest.approx(single)
    with pytest.raises(ValueError, match="must pair up"):
        clip_t(images, prompts[:2], clip)


def test_ssim_and_psnr_match_scikit_image() -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = _image(7, (40, 36))
    noisy = np.clip(
        np.asarray(a, dtype=np.int16) + np.random.default_rng(8).integers(-30, 30, (36, 40, 3)),
        0,
        255,
    )
    b = Image.fromarray(noisy.astype(np.uint8))
    x, y = np.asarray(a), np.asarray(b)
    expected_ssim = structural_similarity(
        x,
        y,
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim(a, b) == pytest.approx(expected_ssim, abs=1e-6)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=255), abs=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)
    assert psnr(a, a) == float("inf")
    with pytest.raises(ValueError, match="differ in size"):
        psnr(a, _image(9))


def test_frechet_and_kernel_distances_match_torchmetrics_formulas() -> None:
    from torchmetrics.image.fid import _compute_fid
    from torchmetrics.image.kid import poly_mmd

    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 6))
    b = rng.normal(loc=0.5, scale=1.3, size=(50, 6))
    t_a, t_b = torch.from_numpy(a), torch.from_numpy(b)
    expected = _compute_fid(t_a.mean(0), torch.cov(t_a.T), t_b.mean(0), torch.cov(t_b.T))
    assert frechet_distance(a, b) == pytest.approx(float(expected), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)

    # With one subset holding every row, KID is exactly the unbiased polynomial MMD².
    kid, std = kernel_distance(a[:50], b, subsets=1, subset_size=50)
    assert kid == pytest.approx(float(poly_mmd(t_a[:50], t_b)), rel=1e-6)
    assert std == 0.0
    assert kernel_distance(a, a[::-1].copy(), subsets=3, subset_size=20)[0] < kid


def test_folder_distances_read_image_folders(tmp_path: Path, dino: DinoEncoder) -> None:
    for name in ("real", "fake"):
        (tmp_path / name).mkdir()
    for i in range(4):
        _image(10 + i).save(tmp_path / "real" / f"{i}.png")
        _image(20 + i).save(tmp_path / "fake" / f"{i}.jpg")
    (tmp_path / "real" / "notes.txt").write_text("not an image")
    assert len(image_folder(tmp_path / "real")) == 4
    result = folder_distances(tmp_path / "real", tmp_path / "fake", dino, kid_subsets=5)
    assert set(result) == {"fid", "kid", "kid_std"} and result["fid"] > 0
    same = folder_distances(tmp_path / "real", tmp_path / "real", dino, kid_subsets=5)
    assert same["fid"] == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="no images"):
        image_folder((tmp_path / "empty").mkdir() or tmp_path / "empty")
