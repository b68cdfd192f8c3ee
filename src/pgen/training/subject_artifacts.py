"""A subject artifact's settings and metadata, without torch: generation checks an
artifact (and ``pgen --help`` lists methods) without loading a training stack.

The metadata is the one artifact mechanism (``pgen.context.artifacts``): base model and a
fingerprint of the reference images; the subject's token, weights file and training record
are the kind-specific ``extra``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pgen.context.artifacts import (
    META_FILE,
    ArtifactMeta,
    files_fingerprint,
    model_identity,
    write_meta,
)
from pgen.context.artifacts import read_subject_metadata as read_metadata
from pgen.context.records import Subject

METADATA_FILE = META_FILE


@dataclass(frozen=True)
class SubjectTrainingSettings:
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
    progress: bool = True  # pgen's bar on the terminal (not a setting of the artifact)


@dataclass(frozen=True)
class TrainedSubject:
    """What a training run produced: the facts generation needs (method, token, class
    word, weights file) and the record of the run, written next to the weights."""

    method: str
    subject: Subject
    token: str
    weights: str  # file name inside the artifact folder
    base_model: str
    config: SubjectTrainingSettings
    losses: list[float]

    def write(self, folder: Path) -> dict[str, Any]:
        meta = ArtifactMeta(
            kind=self.method,
            user_id=self.subject.user_id,
            name=self.subject.name,
            base_model=model_identity(self.base_model),
            fingerprint=files_fingerprint(self.subject.image_paths),
            settings={k: v for k, v in asdict(self.config).items() if k != "progress"},
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
