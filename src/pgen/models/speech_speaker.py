"""Speaker embeddings: who is speaking, as a unit vector. An x-vector head from
transformers (``WavLMForXVector``, ``UniSpeechSatForXVector``: e.g.
``microsoft/wavlm-base-plus-sv``), from a Hub id or a folder. The vectors are biometric data:
callers keep them only as the user's artifacts (``pgen.run.speech``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from pgen.models.speech_audio import Audio

SPEAKER_RATE = 16000


class SpeakerEncoder(Protocol):
    name: str
    dim: int

    def embed(self, clips: Sequence[Audio]) -> np.ndarray:
        """One L2-normalized row per clip."""
        ...


class XVectorEncoder:
    def __init__(self, path: str, *, device: str = "cpu") -> None:
        from transformers import AutoConfig, AutoFeatureExtractor

        config = AutoConfig.from_pretrained(path)
        model_class: Any = _xvector_class(config.model_type)
        self.extractor = AutoFeatureExtractor.from_pretrained(path)
        self.model = model_class.from_pretrained(path).to(device).eval()
        self.device = device
        self.dim = int(config.xvector_output_dim)
        self.name = f"xvector:{path}"

    def embed(self, clips: Sequence[Audio]) -> np.ndarray:
        import torch

        rows = []
        for clip in clips:  # one at a time: padding would leak into the pooled statistics
            inputs = self.extractor(
                clip.resampled(SPEAKER_RATE).samples,
                sampling_rate=SPEAKER_RATE,
                return_tensors="pt",
            )
            with torch.no_grad():
                vector = self.model(**{k: v.to(self.device) for k, v in inputs.items()}).embeddings
            rows.append(vector[0].float().cpu().numpy())
        return normalize(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)


def _xvector_class(model_type: str) -> type:
    from transformers import UniSpeechSatForXVector, Wav2Vec2ForXVector, WavLMForXVector

    classes: dict[str, type] = {
        "wavlm": WavLMForXVector,
        "unispeech-sat": UniSpeechSatForXVector,
        "wav2vec2": Wav2Vec2ForXVector,
    }
    if model_type not in classes:
        raise ValueError(
            f"speaker encoder: a {model_type!r} model has no x-vector head; "
            f"expected one of {', '.join(classes)}"
        )
    return classes[model_type]


def normalize(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)
