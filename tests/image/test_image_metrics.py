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
    # Fewer images than dimensions (the usual case for 2048-d Inception features) takes the
    # low-rank route; it must agree with the d x d formula.
    few_a, few_b = rng.normal(size=(5, 300)), rng.normal(loc=0.2, size=(7, 300))
    f_a, f_b = torch.from_numpy(few_a), torch.from_numpy(few_b)
    expected = _compute_fid(f_a.mean(0), torch.cov(f_a.T), f_b.mean(0), torch.cov(f_b.T))
    assert frechet_distance(few_a, few_b) == pytest.approx(float(expected), rel=1e-6)

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
    # Distances on DINO features are named for DINO: FID/KID are Inception's alone.
    assert set(result) == {"fd_dino", "kd_dino", "kd_dino_std"} and result["fd_dino"] > 0
    same = folder_distances(tmp_path / "real", tmp_path / "real", dino, kid_subsets=5)
    assert same["fd_dino"] == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="no images"):
        image_folder((tmp_path / "empty").mkdir() or tmp_path / "empty")


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialized FID Inception state dict, saved under the file name pytorch-fid
    uses. He-normal convolutions and random batch-norm statistics keep the random features
    from vanishing through 94 layers, so the distances compared below are not all ~0."""
    from pgen.evaluate.metrics.image_inception import FidInceptionV3

    torch.manual_seed(4)
    model = FidInceptionV3()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(model.state_dict(), path)
    return path


def test_fid_inception_has_the_checkpoint_layout_and_loads_it(
    inception_weights: Path, tmp_path: Path
) -> None:
    from pgen.evaluate.metrics.image_inception import load_fid_inception, resize_like_tensorflow1

    state = torch.load(inception_weights, weights_only=True)
    # Entries of the converted TensorFlow graph (pytorch-fid / torch-fidelity naming).
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_6b.branch7x7dbl_5.conv.weight"].shape == (192, 128, 1, 7)
    assert state["Mixed_7c.branch3x3dbl_3b.bn.running_var"].shape == (384,)
    assert state["fc.weight"].shape == (1008, 2048)
    model = load_fid_inception(inception_weights)
    assert sum(p.numel() for p in model.parameters()) == 23_850_960
    assert torch.equal(
        model.Mixed_5b.branch_pool.conv.weight, state["Mixed_5b.branch_pool.conv.weight"]
    )
    # TensorFlow 1 samples at i * in/out (no half-pixel centers): [0, 10] -> 0, 5, 10, 10.
    row = torch.tensor([[[[0.0, 10.0]]]])
    assert resize_like_tensorflow1(row, 4)[0, 0, 0].tolist() == [0.0, 5.0, 10.0, 10.0]
    broken = tmp_path / "broken.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, broken)
    with pytest.raises(ValueError, match="not the FID Inception-V3 state dict"):
        load_fid_inception(broken)
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05"):
        load_fid_inception(tmp_path / "missing.pth")


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two real and two generated 32x32 images (each one a 2048-d Inception pass, 0.5 s);
    only 00 is in both, the one SSIM/PSNR pair."""
    real, generated = tmp_path / "real", tmp_path / "generated"
    real.mkdir(), generated.mkdir()
    for i in (0, 5):
        _image(30 + i).save(real / f"{i:02d}.png")
    for i in range(2):
        _image(40 + i).save(generated / f"{i:02d}.png")
    return real, generated


def test_eval_images_command_reports_every_metric(
    tmp_path: Path,
    tiny_clip: Path,
    tiny_dino: Path,
    inception_weights: Path,
    clip: ClipEncoder,
    dino: DinoEncoder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from torchmetrics.image.kid import KernelInceptionDistance

    from pgen.cli.main import main
    from pgen.evaluate.metrics.image_inception import load_fid_inception, to_uint8

    real, generated = _folders(tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a dog\na red dog\n")
    argv = ["--home", str(tmp_path), "eval-images", "--real", str(real)]
    argv += ["--generated", str(generated), "--prompts", str(prompts), "--kid-subsets", "3"]
    argv += ["--clip-model", str(tiny_clip), "--dino-model", str(tiny_dino)]
    assert main([*argv, "--inception", str(inception_weights), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    r, g = image_folder(real), image_folder(generated)
    assert got["clip_i"] == pytest.approx(clip_i(g, r, clip), abs=1e-6)
    assert got["dino_i"] == pytest.approx(dino_i(g, r, dino), abs=1e-6)
    texts = ["a dog", "a red dog"]
    assert got["clip_t"] == pytest.approx(clip_t(g, texts, clip), abs=1e-6)
    assert got["pairs"] == 1
    assert got["ssim"] == pytest.approx(ssim(r[0], g[0])) and got["psnr"] == pytest.approx(
        psnr(r[0], g[0])
    )
    by_dino = folder_distances(real, generated, dino, kid_subsets=3)
    assert got["fd_dino"] == pytest.approx(by_dino["fd_dino"], rel=1e-6)
    assert got["kd_dino"] == pytest.approx(by_dino["kd_dino"], rel=1e-6)
    assert "fd_clip" in got and "kd_clip_std" in got

    # Classic KID: torchmetrics' KernelInceptionDistance with the same feature module (one
    # subset holding both images of each set, so both sides are deterministic).
    inception = load_fid_inception(inception_weights)
    reference = KernelInceptionDistance(feature=inception, subsets=1, subset_size=2)
    reference.update(torch.cat([to_uint8(p) for p in r]), real=True)
    reference.update(torch.cat([to_uint8(p) for p in g]), real=False)
    expected = float(reference.compute()[0])
    assert abs(expected) > 1e-3  # the random features did not vanish
    # torchmetrics computes in float32, we in float64.
    assert got["kid"] == pytest.approx(expected, rel=1e-3) and got["kid_std"] == pytest.approx(
        0, abs=1e-9
    )
    # FID on the features torchmetrics extracted (its formula is checked against
    # torchmetrics above; a torchmetrics FID run here would spend 8 s on 2048 x 2048
    # eigenvalues).
    x, y = (
        torch.cat(f).double().numpy() for f in (reference.real_features, reference.fake_features)
    )
    assert got["fid"] == pytest.approx(frechet_distance(x, y), rel=1e-4) and got["fid"] > 0
    assert "inception_i" not in got

    # The table, and CLIP-T refused without CLIP.
    assert main([*argv[:7], "--clip-model", "none", "--dino-model", str(tiny_dino)]) == 0
    table = capsys.readouterr().out
    assert "| DINO-I |" in table and "| SSIM/PSNR pairs | 1 |" in table and "CLIP" not in table
    assert main([*argv, "--clip-model", "none"]) == 1
    assert "--prompts needs a CLIP model" in capsys.readouterr().err
