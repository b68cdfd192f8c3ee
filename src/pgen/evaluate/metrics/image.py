"""Image metrics of personalized generation.

Subject fidelity and prompt fidelity as DreamBooth (Ruiz et al., 2023) defines them: the
average pairwise cosine similarity between embeddings of generated and real images (CLIP-I
with CLIP ViT-B/32, DINO-I with the CLS token of DINO ViT-S/16), and between generated images
and their prompts (CLIP-T). Pixel metrics SSIM and PSNR compare aligned image pairs. The
Fréchet and kernel distances compare two sets of images through the features of an encoder:
on the FID Inception-V3 (image_inception.py) they are the classic FID and KID; on CLIP or
DINO features they are named FD_CLIP / KD_CLIP, FD_DINO / KD_DINO (comparable only between
runs with the same encoder).

Encoders load from any Hugging Face id or local folder; no torchvision is needed (the
transformers image processors run on PIL).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

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


class FeatureEncoder(Protocol):
    """Anything that embeds images: CLIP, DINO, the FID Inception."""

    name: str  # short name used in metric names: clip, dino, inception

    def images(self, images: Sequence[ImageLike], normalize: bool = True) -> torch.Tensor: ...


class _Encoder:
    model: Any
    name = "encoder"

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

    name = "clip"

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

    name = "dino"

    def __init__(self, spec: str = DEFAULT_DINO, device: str = "cpu", batch_size: int = 32):
        from transformers import AutoConfig, AutoModel

        super().__init__(spec, device, batch_size)
        # ViT checkpoints (DINO) carry no pooler; DINOv2 and others take no such option.
        vit = AutoConfig.from_pretrained(spec).model_type == "vit"
        options: dict[str, Any] = {"add_pooling_layer": False} if vit else {}
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
    diff = mu_a - mu_b
    if min(len(a), len(b)) < a.shape[1]:
        # Fewer images than dimensions (2048-d Inception features of a few hundred images):
        # with centered rows A, B, S_a = A'A/(n_a-1) and S_b = B'B/(n_b-1), and the nonzero
        # eigenvalues of S_a S_b are those of (AB')(AB')'/c, so Tr((S_a S_b)^1/2) is the
        # nuclear norm of AB'/sqrt(c): exact, and an SVD of n_a x n_b instead of the
        # eigenvalues of a d x d product (30 s at d = 2048 on one core).
        ca, cb = a - mu_a, b - mu_b
        scale = (len(a) - 1) * (len(b) - 1)
        trace_sqrt = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(scale)
        traces = (ca**2).sum() / (len(a) - 1) + (cb**2).sum() / (len(b) - 1)
        return float(diff @ diff + traces - 2 * trace_sqrt)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^1/2) is the sum of square roots of the eigenvalues of S_a S_b, which are
    # real and non-negative up to rounding.
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
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


def distance_names(encoder: FeatureEncoder) -> tuple[str, str]:
    """What the Fréchet and kernel distances are called on this encoder's features: FID and
    KID only on the Inception they were defined with, FD_<encoder> and KD_<encoder> else."""
    if encoder.name == "inception":
        return "fid", "kid"
    return f"fd_{encoder.name}", f"kd_{encoder.name}"


def folder_distances(
    real: str | Path, generated: str | Path, encoder: FeatureEncoder, kid_subsets: int = 100
) -> dict[str, float]:
    """Fréchet and kernel distances between two folders of images on ``encoder`` features,
    named by the encoder (see distance_names); the kernel distance comes with its standard
    deviation over subsets (``<name>_std``)."""
    x = encoder.images(image_folder(real), normalize=False).numpy()
    y = encoder.images(image_folder(generated), normalize=False).numpy()
    fd, kd = distance_names(encoder)
    mean, std = kernel_distance(x, y, subsets=kid_subsets)
    return {fd: frechet_distance(x, y), kd: mean, f"{kd}_std": std}


def evaluate_folders(
    real: str | Path,
    generated: str | Path,
    encoders: Sequence[FeatureEncoder] = (),
    prompts: Sequence[str] | None = None,
    kid_subsets: int = 100,
) -> dict[str, float]:
    """Every metric that applies to a folder of generated images and a folder of real ones:
    CLIP-I / DINO-I (subject fidelity) and FD / KD (set distances) per encoder, CLIP-T when
    prompts are given (one per generated image in name order, or one for all), and SSIM /
    PSNR averaged over the image pairs that share a file name stem and a size."""
    real_paths, generated_paths = image_folder(real), image_folder(generated)
    result: dict[str, float] = {
        "images_real": float(len(real_paths)),
        "images_generated": float(len(generated_paths)),
    }
    for encoder in encoders:
        x = encoder.images(real_paths, normalize=False)
        y = encoder.images(generated_paths, normalize=False)
        if encoder.name != "inception":  # pool3 features are no similarity space
            unit = F.normalize(y, dim=-1), F.normalize(x, dim=-1)
            result[f"{encoder.name}_i"] = mean_pairwise_cosine(*unit)
        if min(len(x), len(y)) >= 2:  # a covariance needs two samples
            fd, kd = distance_names(encoder)
            result[fd] = frechet_distance(x.numpy(), y.numpy())
            result[kd], result[f"{kd}_std"] = kernel_distance(
                x.numpy(), y.numpy(), subsets=kid_subsets
            )
        if prompts is not None and isinstance(encoder, ClipEncoder):
            texts = list(prompts) * len(generated_paths) if len(prompts) == 1 else prompts
            result["clip_t"] = clip_t(generated_paths, texts, encoder)
    by_stem = {p.stem: p for p in real_paths}
    pairs = [(by_stem[p.stem], p) for p in generated_paths if p.stem in by_stem]
    pairs = [(a, b) for a, b in pairs if open_images([a])[0].size == open_images([b])[0].size]
    if pairs:
        result["pairs"] = float(len(pairs))
        result["ssim"] = float(np.mean([ssim(a, b) for a, b in pairs]))
        result["psnr"] = float(np.mean([psnr(a, b) for a, b in pairs]))
    return result
