"""Face similarity of generated images: is the person in them the person of the references?

The identity metric of ID-preserving generation (PhotoMaker, InstantID, IP-Adapter-FaceID
report it with ArcFace): the cosine between the face in each generated image and the faces
of the reference photos, through a face-recognition backbone (``models/face.py``: dlib's
ResNet offline, or an ArcFace network). It is averaged over the generated images where a
face is detected; the share of generated images with a detectable face is reported beside
it, since a model that draws no face would otherwise score only on its rare successes.
Each image counts its largest face (a portrait's subject; in a crowd, the closest).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pgen.evaluate.metrics.image import ImageLike, open_images
from pgen.models.face import FaceEmbedder


def largest_faces(images: Sequence[ImageLike], embedder: FaceEmbedder) -> list[np.ndarray | None]:
    """Each image's largest face vector, None where no face is found."""
    found = []
    for image in open_images(images):
        faces = embedder.faces(image)
        found.append(faces[0].vector if faces else None)
    return found


def face_similarity(
    references: Sequence[ImageLike], generated: Sequence[ImageLike], embedder: FaceEmbedder
) -> dict[str, float]:
    """``face_sim`` (mean identity cosine of generated faces to the reference faces, over
    generated images with a face; NaN when none has one), ``face_detected`` (the share of
    generated images with a face), and the counts behind them."""
    refs = [v for v in largest_faces(references, embedder) if v is not None]
    if not refs:
        raise ValueError("face similarity: no face in any reference image")
    gen = largest_faces(generated, embedder)
    with_face = [v for v in gen if v is not None]
    sims = [float(np.mean(np.stack(refs) @ v)) for v in with_face]
    return {
        "face_sim": float(np.mean(sims)) if sims else float("nan"),
        "face_detected": len(with_face) / max(len(gen), 1),
        "faces_reference": float(len(refs)),
        "faces_generated": float(len(with_face)),
    }
