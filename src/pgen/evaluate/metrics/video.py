"""Video and post metrics, over the image metrics' encoders.

For a clip (AnimateDiff and its successors report these): per-frame CLIP-I and DINO-I
against the subject's reference images (the mean over frames of the mean over references),
CLIP-T of every frame against the prompt, and temporal consistency, the mean CLIP cosine
similarity of consecutive frames (1.0: a still picture; low: flicker). FVD needs a video
feature network: the original I3D does not install offline, so ``fvd`` takes any encoder of
whole clips, such as a transformers VideoMAE folder (``TransformersVideoNetwork``).

For a 3D asset, the same over its rendered turntable views (DreamBooth3D reports CLIP-I of
views against the references, and CLIP-T).

For a post: the agreement of its caption and its image, CLIP-T between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pgen.evaluate.metrics.image import (
    ClipEncoder,
    DinoEncoder,
    ImageLike,
    clip_t,
    frechet_distance,
    mean_pairwise_cosine,
    open_images,
)


class ClipEncoderLike(Protocol):
    """What the clip metrics use of ``ClipEncoder`` (images and texts in one space)."""

    def images(self, images: Sequence[ImageLike], normalize: bool = True) -> Any: ...
    def texts(self, texts: Sequence[str]) -> Any: ...


class VideoFeatureNetwork(Protocol):
    """A network that embeds whole clips (I3D for FVD): one row per clip."""

    def clips(self, clips: Sequence[Sequence[ImageLike]]) -> np.ndarray: ...


def temporal_consistency(frames: Sequence[ImageLike], encoder: ClipEncoderLike) -> float:
    """Mean CLIP cosine similarity of consecutive frames."""
    if len(frames) < 2:
        raise ValueError("temporal consistency needs at least two frames")
    features = encoder.images(frames)
    return float((features[1:] * features[:-1]).sum(dim=-1).mean())


def video_metrics(
    frames: Sequence[ImageLike],
    prompt: str | None = None,
    references: Sequence[ImageLike] = (),
    clip: ClipEncoder | None = None,
    dino: DinoEncoder | None = None,
) -> dict[str, float]:
    """One clip's metrics: ``clip_i`` / ``dino_i`` (against ``references``), ``clip_t``
    (against ``prompt``) and ``temporal`` (consecutive frames), each where its inputs are."""
    result: dict[str, float] = {"frames": float(len(frames))}
    if clip is not None:
        features = clip.images(frames)
        if len(frames) > 1:
            result["temporal"] = float((features[1:] * features[:-1]).sum(dim=-1).mean())
        if references:
            result["clip_i"] = mean_pairwise_cosine(features, clip.images(references))
        if prompt is not None:
            result["clip_t"] = clip_t(frames, [prompt] * len(frames), clip)
    if dino is not None and references:
        result["dino_i"] = mean_pairwise_cosine(dino.images(frames), dino.images(references))
    return result


def asset_metrics(
    views: Sequence[ImageLike],
    prompt: str | None = None,
    references: Sequence[ImageLike] = (),
    clip: ClipEncoder | None = None,
    dino: DinoEncoder | None = None,
) -> dict[str, float]:
    """A 3D asset's metrics over its rendered views (DreamBooth3D's): ``clip_i`` / ``dino_i``
    against the subject's references, ``clip_t`` against the prompt, and
    ``view_consistency``, the CLIP similarity of neighbouring views around the object."""
    scores = video_metrics(views, prompt, references, clip, dino)
    renamed = {"frames": "views", "temporal": "view_consistency"}
    return {renamed.get(name, name): value for name, value in scores.items()}


class TransformersVideoNetwork:
    """A transformers video encoder (VideoMAE and kin: a ``save_pretrained`` folder or an id
    with its image processor) as FVD's feature network: each clip is resampled to the
    frames the model takes, and its row is the mean of the last hidden states. The I3D of
    the original FVD does not install offline; self-supervised VideoMAE features are the
    alternative Ge et al. (2024) propose, being less biased to single frames' content.
    FVDs are comparable only under the same network and clip length."""

    def __init__(self, spec: str, device: str = "cpu", batch_size: int = 8) -> None:
        from transformers import AutoImageProcessor, AutoModel

        self.model = AutoModel.from_pretrained(spec).to(device).eval()
        self.processor: Any = AutoImageProcessor.from_pretrained(spec)
        self.frames = int(getattr(self.model.config, "num_frames", 16))
        self.device, self.batch_size, self.name = device, batch_size, spec

    def _resampled(self, clip: Sequence[ImageLike]) -> list[Any]:
        if not clip:
            raise ValueError("a clip with no frames")
        picks = np.linspace(0, len(clip) - 1, self.frames).round().astype(int)
        return open_images([clip[i] for i in picks])

    def clips(self, clips: Sequence[Sequence[ImageLike]]) -> np.ndarray:
        import torch

        rows = []
        for start in range(0, len(clips), self.batch_size):
            batch = [self._resampled(c) for c in clips[start : start + self.batch_size]]
            pixels = self.processor(batch, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                hidden = self.model(pixel_values=pixels.to(self.device)).last_hidden_state
            rows.append(hidden.mean(dim=1).float().cpu().numpy())
        return np.concatenate(rows).astype(np.float64)


def fvd(
    real: Sequence[Sequence[ImageLike]],
    generated: Sequence[Sequence[ImageLike]],
    network: VideoFeatureNetwork,
) -> float:
    """Fréchet distance of two sets of clips in ``network``'s feature space (FVD with I3D;
    comparable only between runs with the same network and clip length)."""
    return frechet_distance(network.clips(real), network.clips(generated))


def evaluate_clips(
    clips: Sequence[Path],
    prompts: Sequence[str] | None,
    references: Sequence[ImageLike],
    clip: ClipEncoder | None,
    dino: DinoEncoder | None,
    network: VideoFeatureNetwork | None = None,
    real_clips: Sequence[Path] = (),
) -> dict[str, float]:
    """The mean of each clip metric over saved clips (MP4 or GIF), and with a ``network``
    their FVD against ``real_clips``."""
    from pgen.models.video import read_frames

    if prompts is not None and len(prompts) not in (1, len(clips)):
        raise ValueError(f"{len(prompts)} prompts for {len(clips)} clips: give one or one each")
    rows = []
    for index, path in enumerate(clips):
        prompt = None if prompts is None else prompts[min(index, len(prompts) - 1)]
        rows.append(video_metrics(read_frames(path), prompt, references, clip, dino))
    names = sorted({name for row in rows for name in row})
    means = {name: float(np.mean([row[name] for row in rows if name in row])) for name in names}
    if network is not None:
        generated = [read_frames(path) for path in clips]
        means["fvd"] = fvd([read_frames(path) for path in real_clips], generated, network)
    return {**means, "clips": float(len(clips))}


def post_agreement(
    images: Sequence[ImageLike], captions: Sequence[str], encoder: ClipEncoderLike
) -> float:
    """Mean CLIP-T between each post's image and its own caption."""
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images for {len(captions)} captions: they must pair up")
    return float((encoder.images(images) * encoder.texts(captions)).sum(dim=-1).mean())
