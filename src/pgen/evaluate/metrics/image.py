"""Image metrics of personalized generation.

Subject fidelity and prompt fidelity as DreamBooth (Ruiz et al., 2023) defines them: the
average pairwise cosine similarity between embeddings of generated and real images (CLIP-I
with CLIP ViT-B/32, DINO-I with the CLS token of DINO ViT-S/16), and between generated images
and their prompts (CLIP-T). Pixel metrics SSIM and PSNR compare aligned image pairs; FID and
KID compare two sets of images through the features of an image encoder.

Encoders load from any Hugging Face id or local folder; no torchvision is needed (the
transformers image processors run on PIL).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
DEFAULT_DINO = "facebook/dino-vits16"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

ImageLike = Image.Image | str | Path


def open_images(images: Sequence[ImageLike]) -> list[Image.Image]:
    opened = []
    for image in images:
        if isinstance(image, Image.Image):
            opened.append(image.convert("RGB"))
            continue
        try:
            with Image.open(image) as handle:
                opened.append(handle.convert("RGB"))
        except OSError as error:
            raise ValueError(f"image {image}: cannot be read ({error})") from None
    return opened


def image_folder(folder: str | Path) -> list[Path]:
    """The images directly in ``folder``, sorted by name."""
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"{path}: not a folder of images")
    found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


class _Encoder:
    model: Any

    def __init__(self, spec: str, device: str, batch_size: int) -> None:
        from transformers import AutoImageProcessor

        self.spec = spec
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.processor: Any = AutoImageProcessor.from_pretrained(spec)

    def _image_batch(self, images: list[Image.Image]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def images(self, images: Sequence[ImageLike], normalize: bool = True) -> torch.Tensor:
        """Float32 embeddings, one row per image, L2-normalized unless told otherwise."""
        opened = open_images(images)
        rows = [
            self._image_batch(opened[start : start + self.batch_size])
            for start in range(0, len(opened), self.batch_size)
        ]
        if not rows:
            raise ValueError("no images to embed")
        features = torch.cat(rows).float().cpu()
        return F.normalize(features, dim=-1) if normalize else features

    def _pixels(self, images: list[Image.Image]) -> torch.Tensor:
        batch = self.processor(images=images, return_tensors="pt")
        return batch["pixel_values"].to(self.device)


class ClipEncoder(_Encoder):
    """CLIP image and text embeddings in their shared space."""

    def __init__(self, spec: str = DEFAULT_CLIP, device: str = "cpu", batch_size: int = 32):
        from transformers import AutoTokenizer, CLIPModel

        super().__init__(spec, device, batch_size)
        self.model = CLIPModel.from_pretrained(spec)
        self.model.to(self.device).eval()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(spec)

    def _image_batch(self, images: list[Image.Image]) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=self._pixels(images)))

    @torch.no_grad()
    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        limit = self.model.config.text_config.max_position_embeddings
        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=limit,
                return_tensors="pt",
            ).to(self.device)
            rows.append(_features(self.model.get_text_features(**batch)))
        return F.normalize(torch.cat(rows).float(), dim=-1).cpu()


class DinoEncoder(_Encoder):
    """The CLS token of a self-supervised ViT (DINO): sensitive to the subject's identity,
    not only its class, which is why DreamBooth prefers it for subject fidelity."""

    def __init__(self, spec: str = DEFAULT_DINO, device: str = "cpu", batch_size: int = 32):
        from transformers import AutoConfig, AutoModel

        super().__init__(spec, device, batch_size)
        # ViT checkpoints (DINO) carry no pooler; DINOv2 and others take no such option.
        vit = AutoConfig.from_pretrained(spec).model_type == "vit"
        options = {"add_pooling_layer": False} if vit else {}
        self.model = AutoModel.from_pretrained(spec, **options)
        self.model.to(self.device).eval()

    def _image_batch(self, images: list[Image.Image]) -> torch.Tensor:
        return self.model(pixel_values=self._pixels(images)).last_hidden_state[:, 0]


def _features(output: Any) -> torch.Tensor:
    # transformers 5 returns a model output here; older versions returned the tensor.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def mean_pairwise_cosine(a: torch.Tensor, b: torch.Tensor, same_set: bool = False) -> float:
    """Mean cosine similarity over all pairs of rows of ``a`` and ``b`` (unit rows). With
    ``same_set`` (a is b) the pairs of an image with itself are left out."""
    sims = a @ b.T
    if not same_set:
        return float(sims.mean())
    n = sims.shape[0]
    if n < 2:
        raise ValueError("need at least two images to compare a set with itself")
    return float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))


def clip_i(
    generated: Sequence[ImageLike], references: Sequence[ImageLike], encoder: ClipEncoder
) -> float:
    return mean_pairwise_cosine(encoder.images(generated), encoder.images(references))


def dino_i(
    generated: Sequence[ImageLike], references: Sequence[ImageLike], encoder: DinoEncoder
) -> float:
    return mean_pairwise_cosine(encoder.images(generated), encoder.images(references))


def clip_t(generated: Sequence[ImageLike], prompts: Sequence[str], encoder: ClipEncoder) -> float:
    """Mean cosine similarity between each image and its own prompt."""
    if len(generated) != len(prompts):
        raise ValueError(f"{len(generated)} images for {len(prompts)} prompts: they must pair up")
    return float((encoder.images(generated) * encoder.texts(prompts)).sum(dim=-1).mean())


# -- pixel metrics on aligned pairs ---------------------------------------------------------
def _pair_arrays(a: ImageLike, b: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    first, second = open_images([a, b])
    if first.size != second.size:
        raise ValueError(f"images differ in size: {first.size} and {second.size}")
    return np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)


def psnr(a: ImageLike, b: ImageLike) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit RGB images (inf when identical)."""
    x, y = _pair_arrays(a, b)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def ssim(a: ImageLike, b: ImageLike, sigma: float = 1.5, window: int = 11) -> float:
    """Structural similarity (Wang et al., 2004): Gaussian window 11x11, sigma 1.5,
    K1 0.01, K2 0.03, per RGB channel over the valid region, averaged."""
    x, y = (torch.from_numpy(v).permute(2, 0, 1).unsqueeze(0) for v in _pair_arrays(a, b))
    if min(x.shape[-2:]) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} pixels")
    offsets = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    g = torch.exp(-(offsets**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(3, 1, window, window)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=3)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(value.mean())


# -- set metrics on encoder features ---------------------------------------------------------
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between Gaussians fitted to the
    rows of ``a`` and ``b`` (the FID formula, Heusel et al., 2017)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the Fréchet distance needs at least two images in each set")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^1/2) is the sum of square roots of the eigenvalues of S_a S_b, which are
    # real and non-negative up to rounding.
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def kernel_distance(
    a: np.ndarray,
    b: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Bińkowski et al., 2018): the unbiased MMD² with kernel (x·y/d + 1)³, averaged
    over random subsets. Returns (mean, standard deviation)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least two images in each set")
    rng = np.random.default_rng(seed)
    dim = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((p @ q.T / dim + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        off = m * (m - 1)
        values.append(
            (kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean()
        )
    return float(np.mean(values)), float(np.std(values))


def folder_distances(
    real: str | Path, generated: str | Path, encoder: _Encoder, kid_subsets: int = 100
) -> dict[str, float]:
    """FID and KID between two folders of images, on ``encoder`` features. With an Inception
    encoder these are the classic FID/KID; with CLIP or DINO features (what installs here)
    they are FD_CLIP / FD_DINO: comparable across runs with the same encoder only."""
    x = encoder.images(image_folder(real), normalize=False).numpy()
    y = encoder.images(image_folder(generated), normalize=False).numpy()
    kid, kid_std = kernel_distance(x, y, subsets=kid_subsets)
    return {"fid": frechet_distance(x, y), "kid": kid, "kid_std": kid_std}
