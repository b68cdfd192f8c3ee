"""An ArcFace / InsightFace recognition network as the face embedder, through torch.

No ArcFace weights install offline, and ONNX Runtime is not installed here, so the network
comes as TorchScript: a folder (or a Hub id in the local cache) with ``model.pt`` (an
``arcface_torch`` backbone traced or scripted: (N, 3, S, S) RGB in, (N, D) out) and an
optional ``face_model.json`` (``{"input_size": 112, "mean": 0.5, "std": 0.5,
"padding": 0.0}``). Faces are found and aligned by dlib (HOG detector, 5-point landmarks,
``get_face_chip``); dlib's alignment is not InsightFace's 5-point template, so a real
ArcFace model scores somewhat lower here than on its own crops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pgen.models.embedding import _local_folder, folder_fingerprint
from pgen.models.face import DlibFaces, Face, _dlib, as_array, box

MODEL_FILE = "model.pt"
SETTINGS_FILE = "face_model.json"


class TorchFaceEmbedder:
    def __init__(self, spec: str, device: str = "cpu", detector: str = "hog", upsample: int = 1):
        import torch

        folder = _local_folder(spec, spec)
        if folder is None or not (folder / MODEL_FILE).is_file():
            raise ValueError(
                f"face model {spec!r}: no {MODEL_FILE} (a TorchScript ArcFace network) in that "
                "folder or in the local Hub cache"
            )
        settings: dict[str, Any] = {"input_size": 112, "mean": 0.5, "std": 0.5, "padding": 0.0}
        if (folder / SETTINGS_FILE).is_file():
            try:
                settings.update(json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8")))
            except ValueError as error:
                raise ValueError(f"{folder / SETTINGS_FILE}: not JSON ({error})") from None
        self.size = int(settings["input_size"])
        self.mean, self.std = float(settings["mean"]), float(settings["std"])
        self.padding = float(settings["padding"])
        self.device = device
        self._net = torch.jit.load(str(folder / MODEL_FILE), map_location=device).eval()
        self._faces = DlibFaces(detector, upsample)
        probe = torch.zeros(1, 3, self.size, self.size, device=device)
        with torch.inference_mode():
            self.dim = int(self._net(probe).shape[-1])
        name = Path(spec).name or spec
        self.model_id = f"torch-face:{name}#{folder_fingerprint(folder)}:{detector}:u{upsample}"

    def faces(self, image: Image.Image) -> list[Face]:
        import torch

        array, scale = as_array(image)
        shapes = self._faces.shapes(array)
        if not shapes:
            return []
        dlib = _dlib()
        chips = np.stack(
            [dlib.get_face_chip(array, s, size=self.size, padding=self.padding) for s in shapes]
        )
        batch = torch.from_numpy(chips).permute(0, 3, 1, 2).float().div(255.0)
        batch = (batch - self.mean) / self.std
        with torch.inference_mode():
            out = self._net(batch.to(self.device)).float().cpu().numpy()
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return [
            Face(box(s, scale, image.size), v.astype(np.float32))
            for s, v in zip(shapes, out, strict=True)
        ]
