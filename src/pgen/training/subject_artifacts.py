"""A subject artifact's settings and metadata, without torch: generation checks an
artifact (and ``pgen --help`` lists methods) without loading a training stack.

The metadata is the one artifact mechanism (``pgen.context.artifacts``): base model and a
fingerprint of the reference images; the subject's token, weights file and training record
are the kind-specific ``extra``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from pgen.context.artifacts import (
    META_FILE,
    ArtifactMeta,
    files_fingerprint,
    model_identity,
    read_meta,
    subject_stale_reason,
    write_meta,
)
from pgen.context.records import Subject

METADATA_FILE = META_FILE


@dataclass(frozen=True)
class SubjectTrainingConfig:
    """Settings of one subject's training run. ``learning_rate`` None picks the method's
    usual value (1e-4 for LoRA, 5e-4 for textual inversion)."""

    steps: int = 400
    learning_rate: float | None = None
    batch_size: int = 1
    rank: int = 4  # LoRA rank
    resolution: int | None = None  # None: the model's native resolution
    token: str | None = None  # None: "sks" for DreamBooth, "<name>" for textual inversion
    prior_preservation: bool = False
    class_images: int = 100
    prior_loss_weight: float = 1.0
    class_steps: int = 30  # sampling steps for the generated class images
    seed: int = 0


def load_reference_images(paths: Sequence[str | Path]) -> list[Image.Image]:
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(ImageOps.exif_transpose(image).convert("RGB"))
        except (OSError, ValueError) as error:
            raise ValueError(f"reference image {path}: cannot be read ({error})") from None
    return images


def stale_reason(meta: dict[str, Any], base_model: str, subject: Subject) -> str:
    """Why an artifact no longer fits the loaded model and the subject ("" when it does);
    the rule is ``pgen.context.artifacts.subject_stale_reason``."""
    return subject_stale_reason(meta, base_model, subject.image_paths)


@dataclass(frozen=True)
class TrainedSubject:
    """What a training run produced: the facts generation needs (method, token, class
    word, weights file) and the record of the run, written next to the weights."""

    method: str
    subject: Subject
    token: str
    weights: str  # file name inside the artifact folder
    base_model: str
    config: SubjectTrainingConfig
    losses: list[float]

    def write(self, folder: Path) -> dict[str, Any]:
        meta = ArtifactMeta(
            kind=self.method,
            user_id=self.subject.user_id,
            name=self.subject.name,
            base_model=model_identity(self.base_model),
            fingerprint=files_fingerprint(self.subject.image_paths),
            settings=asdict(self.config),
            extra={
                "subject": self.subject.name,
                "class_word": self.subject.class_word,
                "token": self.token,
                "weights": self.weights,
                "losses": self.losses,
            },
        )
        write_meta(folder, meta)
        return read_metadata(folder)


def read_metadata(folder: Path) -> dict[str, Any]:
    """The artifact's metadata as one flat record: base model, fingerprint, the training
    settings under ``config`` and the subject's facts (token, weights, losses...)."""
    try:
        meta = read_meta(folder)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{folder / META_FILE}: not a pgen artifact ({error})") from None
    if meta is None:
        raise ValueError(f"{folder}: no finished artifact ({META_FILE} is missing)")
    return {
        **meta.extra,
        "method": meta.kind,
        "base_model": meta.base_model,
        "fingerprint": meta.fingerprint,
        "config": meta.settings,
    }
