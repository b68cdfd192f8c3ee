"""3D strategy ``subject``: the user's subject as a 3D asset, made by an image-to-3D model
(Shap-E) from the one reference photo most typical of the subject.

Image-to-3D models take one image, so which reference goes in matters: a blurred shot or an
odd angle becomes the whole asset. The most typical one is read from the concept memory's
own embeddings (the view-averaged vectors it recognizes the subject by): the reference
closest to the subject's prototype, the mean of all its references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pgen.components import Modality, Provenance, ShapeRequest, Tools
from pgen.context.records import Subject
from pgen.models.base import AdapterRef
from pgen.personalize.subject import pick_subject


@dataclass
class ShapePlan:
    """The image the asset is made from, and its seed."""

    image: str
    seed: int
    provenance: Provenance = field(default_factory=Provenance)
    adapter: AdapterRef | None = None  # Shap-E takes no adapter: the photo carries the subject
    details: dict[str, Any] = field(default_factory=dict)


def typical_reference(vectors: np.ndarray) -> tuple[int, list[float]]:
    """The index of the row closest to the rows' mean direction, and every row's cosine
    to it (unit rows in; one row: itself)."""
    prototype = vectors.mean(axis=0)
    prototype = prototype / max(float(np.linalg.norm(prototype)), 1e-12)
    scores = vectors @ prototype
    return int(np.argmax(scores)), [round(float(s), 4) for s in scores]


def reference_scores(tools: Tools, user_id: str, subject: Subject) -> tuple[str, list[float]]:
    """The subject's most typical reference path and each reference's score, from the
    photos component's image vectors (cached per user, so forgotten with them)."""
    if not subject.image_paths:
        raise ValueError(f"subject {subject.name!r} of user {user_id!r} has no reference image")
    vectors = tools.model("photos").vectors(user_id=user_id).of_paths(subject.image_paths, user_id)
    best, scores = typical_reference(vectors)
    return subject.image_paths[best], scores


class ShapeSubject:
    name = "subject"
    modality: Modality = "3d"
    description = "the user's subject as a 3D mesh (Shap-E), from its most typical reference"
    retrieves = False
    adapter_kind: str | None = None

    def prepare(self, requests: list[ShapeRequest], tools: Tools) -> list[ShapePlan]:
        plans = []
        for r in requests:
            subject = pick_subject(tools.store, r)
            image, scores = reference_scores(tools, r.user_id, subject)
            provenance = Provenance(subjects=[subject.name])
            details = {
                "reference": image,
                "reference_scores": dict(zip(subject.image_paths, scores, strict=True)),
                "seed": r.seed,
            }
            plans.append(ShapePlan(image, r.seed, provenance, None, details))
        return plans
