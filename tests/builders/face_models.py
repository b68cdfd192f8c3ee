"""A tiny random face-recognition network with ArcFace's interface, saved as TorchScript the
way ``models/face_torch.py`` loads it (``model.pt`` and ``face_model.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def save_tiny_arcface(folder: Path, dim: int = 8, seed: int = 0) -> Path:
    """(N, 3, 32, 32) RGB in, (N, dim) out; returns ``folder``."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16, dim),
    ).eval()
    folder.mkdir(parents=True)
    torch.jit.trace(net, torch.zeros(1, 3, 32, 32)).save(str(folder / "model.pt"))
    (folder / "face_model.json").write_text(json.dumps({"input_size": 32}))
    return folder
