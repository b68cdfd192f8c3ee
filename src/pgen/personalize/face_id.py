"""The ``face-id`` strategy: images of one of the user's people (a face subject: class word
``person``, reference photos) conditioned on their face identity through IP-Adapter-FaceID.

The identity is the mean of the largest face's vector in each reference photo, from a face
embedder (``models/face.py``), renormalized; the faces are cached under the user, as
``search-photos`` caches them. FaceID's projection takes the vector of the recognition
network it was trained with (InsightFace's 512-d ArcFace for h94's weights), so the
embedder's size must equal the projection's: dlib's 128-d descriptor fits no released
FaceID weights, and a mismatch is refused before anything loads or renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pgen.components import ImagePlan, ImageRequest, Modality, Provenance, Tools
from pgen.context.base import ContextStore
from pgen.context.records import Subject
from pgen.errors import InvalidRequest
from pgen.models.base import AdapterRef
from pgen.models.face import FaceEmbedder
from pgen.models.face_id import FACEID_REPO, FACEID_WEIGHTS, faceid_identity_dim, faceid_weights
from pgen.personalize.subject import (
    describe_weights,
    pick_subject,
    subject_phrase,
    subject_prompt,
    weight_file,
)
from pgen.usermodel.faces import FACE_CLASS_WORD, FaceError, FaceVectors, is_face_subject

if TYPE_CHECKING:
    from pgen.models.face import Face
    from pgen.models.image import DiffusersImageModel

FACE_ID = "face-id"


@dataclass(frozen=True)
class FaceIDSpec:
    """Where the FaceID weights are (a Hub id in the local cache, or a folder holding
    ``<subfolder>/<weight_name>``), their scale, and the identity embedder
    (``load_face_embedder``'s spec: an ArcFace / InsightFace TorchScript folder; None: the
    engine's ``face_embedder``)."""

    repo: str = FACEID_REPO
    subfolder: str = ""
    weight_name: str = FACEID_WEIGHTS[False]
    scale: float = 0.6
    face_model: str | None = None

    @classmethod
    def for_model(
        cls,
        model: DiffusersImageModel,
        repo: str | None = None,
        *,
        subfolder: str | None = None,
        weight_name: str | None = None,
        scale: float = 0.6,
        face_model: str | None = None,
    ) -> FaceIDSpec:
        """h94's FaceID weights of the model's family, or ``repo`` (an id, a folder, or one
        ``.bin``/``.safetensors`` weight file)."""
        path = weight_file(repo, subfolder, weight_name, "FaceID")
        if path is not None:
            return cls(str(path.parent), "", path.name, scale, face_model)
        name = weight_name or FACEID_WEIGHTS[model.is_sdxl]
        return cls(repo or cls.repo, subfolder or "", name, scale, face_model)

    def describe(self) -> str:
        return describe_weights(self.repo, self.subfolder, self.weight_name)


def subject_identity(
    store: ContextStore, user_id: str, subject: Subject, embedder: FaceEmbedder
) -> np.ndarray:
    """The subject's identity: the mean of each reference's largest face, unit length. A
    reference without a face is refused, and nothing is cached."""

    def every_photo_has_a_face(found: list[list[Face]]) -> None:
        for path, faces in zip(subject.image_paths, found, strict=True):
            if not faces:
                raise FaceError(
                    f"subject {subject.name!r} of user {user_id!r}: reference photo {path!r} "
                    "shows no face (face-id needs a face in every one)"
                )

    vectors = FaceVectors(embedder, store)
    found = vectors.of_paths(subject.image_paths, user_id, every_photo_has_a_face)
    mean = np.mean([faces[0].vector for faces in found], axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def _spec(request: ImageRequest, tools: Tools) -> FaceIDSpec:
    if request.ip_adapter is None:
        return FaceIDSpec.for_model(tools.image_model)
    if not isinstance(request.ip_adapter, FaceIDSpec):
        raise InvalidRequest(f"face-id takes a FaceIDSpec, not {type(request.ip_adapter).__name__}")
    return request.ip_adapter


class FaceIDStrategy:
    name = FACE_ID
    modality: Modality = "image"
    description = "one of the user's people from their face identity (IP-Adapter-FaceID)"
    retrieves = False
    adapter_kind: str | None = FACE_ID

    def prepare(self, requests: list[ImageRequest], tools: Tools) -> list[ImagePlan]:
        embedders: dict[str | None, FaceEmbedder] = {}
        plans = []
        for request in requests:
            subject = pick_subject(tools.store, request)
            if not is_face_subject(subject):
                raise InvalidRequest(
                    f"face-id: subject {subject.name!r} of user {request.user_id!r} is a "
                    f"{subject.class_word!r}, not a {FACE_CLASS_WORD!r}"
                )
            spec = _spec(request, tools)
            try:
                weights = faceid_weights(spec.repo, spec.subfolder, spec.weight_name)
            except FileNotFoundError as error:  # the request's weights, not a server fault
                raise InvalidRequest(str(error)) from None
            dim = faceid_identity_dim(weights)
            if spec.face_model not in embedders:
                embedders[spec.face_model] = _embedder(spec.face_model, tools)
            embedder = embedders[spec.face_model]
            if embedder.dim != dim:
                raise InvalidRequest(
                    f"face-id: the identity embedder {embedder.model_id} gives {embedder.dim}-d "
                    f"vectors, the FaceID weights {weights} take {dim}-d ones; give an "
                    f"ArcFace/InsightFace embedder of {dim} dims (face model)"
                )
            identity = subject_identity(tools.store, request.user_id, subject, embedder)
            settings: dict[str, Any] = {
                "weights": str(weights),
                "scale": spec.scale,
                "identity": identity,
            }
            adapter = AdapterRef(
                FACE_ID, f"{request.user_id}/{subject.name}/{FACE_ID}", None, settings
            )
            provenance = Provenance(
                subjects=[subject.name], artifacts=[str(weights)], model=tools.image_model.name
            )
            details = {
                "method": FACE_ID,
                "reference_images": list(subject.image_paths),
                "face_model": embedder.model_id,
                "scale": spec.scale,
            }
            prompt = subject_prompt(request.instruction, subject, subject_phrase("", subject))
            plans.append(ImagePlan(prompt, provenance, adapter, details))
        return plans


def _embedder(face_model: str | None, tools: Tools) -> FaceEmbedder:
    if face_model is None:
        return tools.model("face_embedder")
    from pgen.models.face import load_face_embedder

    return load_face_embedder(face_model)
