"""The user's photos as user modeling: their concept memory (their subjects with reference
vectors cached in the store, calibrated against the operator's negative pool) and photo
search (documents of kind ``photo`` whose ``fields["image_path"]`` names the image), ranked
by the concepts a query names, by its words with a text-image embedder (CLIP, SigLIP), or
by both. With a face embedder, the user's people (subjects of class ``person``) are
recognized by face instead (``usermodel/faces.py``): a photo is theirs when one of its faces
passes the person's calibrated decision."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pgen.context.base import ContextStore
from pgen.context.media import UPLOADS_KIND
from pgen.models.face import FaceEmbedder
from pgen.models.image_embedding import ImageEmbedder, TextImageEmbedder
from pgen.usermodel.concepts import Calibration, ConceptMemory, ImageVectors, load_memory
from pgen.usermodel.faces import (
    FACE_CALIBRATION,
    FaceMemory,
    FaceVectors,
    Recognized,
    is_face_subject,
    load_face_memory,
)

PHOTO_KIND = "photo"
FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "or",
        "the",
        "of",
        "in",
        "on",
        "at",
        "with",
        "my",
        "our",
        "his",
        "her",
        "their",
        "photo",
        "photos",
        "picture",
        "pictures",
    ]
)
TEXT_WEIGHT = 0.25  # composed search: weight of the (standardized) text score


@dataclass(frozen=True)
class PhotoHit:
    doc_id: str
    image_path: str
    score: float
    concepts: dict[str, float] = field(default_factory=dict)  # named concept -> confidence


class PhotoSearch(list[PhotoHit]):
    """The hits, best first, and the query's words the search could not use
    (``unused_words``: what is left besides concept names when no text-image embedder is
    configured; empty when every word counted)."""

    unused_words: str = ""

    def __init__(self, hits: Sequence[PhotoHit] = (), unused_words: str = "") -> None:
        super().__init__(hits)
        self.unused_words = unused_words


class PhotoMemory:
    """One store's photo side: where photos may be read from (``allowed``), the image
    embedder (and optionally a text-image one), the calibration and the negative pool.
    Components load on first use."""

    def __init__(
        self,
        store: ContextStore,
        image_embedder: Callable[[], ImageEmbedder],
        *,
        allowed: Sequence[Path] | None = None,
        calibration: Calibration | None = None,
        negative_pool: Sequence[Path] = (),
        text_image_embedder: Callable[[], TextImageEmbedder] | None = None,
        face_embedder: Callable[[], FaceEmbedder] | None = None,
        face_calibration: Calibration = FACE_CALIBRATION,
    ) -> None:
        self.store = store
        self._face_embedder = face_embedder
        self.face_calibration = face_calibration
        self._embedder = image_embedder
        self._text_embedder = text_image_embedder
        self.allowed = list(allowed) if allowed is not None else None
        self.calibration = calibration or Calibration()
        self.negative_pool = list(negative_pool)  # operator's images, never a user's
        self._pool_vectors: dict[str, np.ndarray] = {}

    @property
    def embedder(self) -> ImageEmbedder:
        return self._embedder()

    def allowed_for(self, user_id: str | None) -> list[Path] | None:
        """Where ``user_id``'s images may be read from: the allowed folders and the user's
        own uploads (a service's references and photos), never another user's."""
        if self.allowed is None or user_id is None or not self.store.has_user(user_id):
            return self.allowed
        artifacts = self.store.artifacts(user_id)
        return [*self.allowed, *(p for (kind, _), p in artifacts.items() if kind == UPLOADS_KIND)]

    def vectors(
        self, embedder: ImageEmbedder | None = None, user_id: str | None = None
    ) -> ImageVectors:
        allowed = self.allowed_for(user_id)
        return ImageVectors(embedder or self._embedder(), self.store, allowed=allowed)

    def memory(self, user_id: str) -> ConceptMemory:
        # With a face embedder, people are recognized by face, not by the whole image.
        keep = None if self._face_embedder is None else (lambda s: not is_face_subject(s))
        if keep is not None and not any(keep(s) for s in self.store.subjects(user_id)):
            return ConceptMemory([], self.calibration)  # only people: no image model to load
        return load_memory(
            self.store,
            user_id,
            self.vectors(None, user_id),
            self.calibration,
            self._pool(),
            keep=keep,
        )

    def face_vectors(self, user_id: str | None = None) -> FaceVectors:
        if self._face_embedder is None:
            raise ValueError("no face embedder is configured (face_embedder: dlib)")
        allowed = self.allowed_for(user_id)
        return FaceVectors(self._face_embedder(), self.store, allowed=allowed)

    def faces(self, user_id: str) -> FaceMemory:
        """The user's people (none without a face embedder, or without person subjects)."""
        if self._face_embedder is None or not any(
            is_face_subject(s) for s in self.store.subjects(user_id)
        ):
            return FaceMemory([], self.face_calibration)
        vectors = self.face_vectors(user_id)
        pool = self._face_pool(vectors)
        return load_face_memory(self.store, user_id, vectors, self.face_calibration, pool)

    def people_in(self, user_id: str, image: Any) -> Recognized | None:
        """Which of the user's people are in a photo already open (a request's): not cached.
        None when the user has no people (or no face embedder is configured)."""
        memory = self.faces(user_id)
        if not memory.people:
            return None
        return memory.recognize(self.face_vectors().of_image(image), image.width)

    def _face_pool(self, vectors: FaceVectors) -> np.ndarray | None:
        """Every face in the operator's negative pool (in memory, like the image pool)."""
        if not self.negative_pool:
            return None
        key = vectors.cache_id
        if key not in self._pool_vectors:
            found = FaceVectors(vectors.embedder).of_paths([str(p) for p in self.negative_pool])
            flat = [f.vector for faces in found for f in faces]
            dim = vectors.embedder.dim
            self._pool_vectors[key] = np.stack(flat) if flat else np.zeros((0, dim))
        pool = self._pool_vectors[key]
        return pool if len(pool) else None

    def query_vector(self, image: Any) -> np.ndarray:
        vector: np.ndarray = ImageVectors(self._embedder()).of_images([image])[0]
        return vector

    def _pool(self) -> np.ndarray | None:
        """The operator's negative pool, embedded once per embedder (in memory: it is no
        user's data, so it has no place among a user's stored vectors)."""
        if not self.negative_pool:
            return None
        embedder = self._embedder()
        if embedder.model_id not in self._pool_vectors:
            vectors = ImageVectors(embedder).of_paths(self.negative_pool)
            self._pool_vectors[embedder.model_id] = vectors
        return self._pool_vectors[embedder.model_id]

    def search_photos(self, user_id: str, query: str, k: int = 10) -> PhotoSearch:
        self.store.user(user_id)
        photos = self.store.documents(user_id, kind=PHOTO_KIND)
        paths = [str(d.fields.get("image_path", "")) for d in photos]
        for doc, path in zip(photos, paths, strict=True):
            if not path:
                raise ValueError(f"photo {doc.doc_id!r} of user {user_id!r} has no image_path")
        memory = self.memory(user_id)
        people = self.faces(user_id)
        named = [c for c in memory.concepts if _names(c.name, query)]
        named_people = [p for p in people.people if _names(p.name, query)]
        words = query
        for name in [c.name for c in named] + [p.name for p in named_people]:
            words = re.sub(re.escape(name), " ", words, flags=re.IGNORECASE)
        words = " ".join(words.split())
        if not named and not named_people and (self._text_embedder is None or not words):
            known = ", ".join([c.name for c in memory.concepts] + [p.name for p in people.people])
            known = known or "none"
            raise ValueError(
                f"query {query!r} names none of the user's concepts ({known}), and no "
                "text-image embedder (CLIP or SigLIP) is configured to search by words"
            )
        # Words beside the concepts' names count only with a text-image embedder: say so.
        content = set(words.lower().split()) - FUNCTION_WORDS  # "Rex and Mochi": all used
        unused = words if self._text_embedder is None and content else ""
        if not photos:
            return PhotoSearch([], unused)
        score = np.zeros(len(photos), dtype=np.float64)
        per_concept: dict[str, np.ndarray] = {}
        if named:
            vectors = self.vectors(None, user_id).of_paths(paths, user_id)
            confidence = memory.confidences(vectors)
            wanted = {c.name for c in named}
            for j, concept in enumerate(memory.concepts):
                if concept.name in wanted:
                    per_concept[concept.name] = confidence[:, j]
            # Every named concept must be there: the weakest one decides.
            score += np.min(np.stack(list(per_concept.values())), axis=0)
        recognized = np.ones(len(photos), dtype=bool)
        if named_people:
            found = self.face_vectors(user_id).of_paths(paths, user_id)
            best = np.stack([people.photo_confidence(faces) for faces in found])
            index = {p.name: j for j, p in enumerate(people.people)}
            for person in named_people:
                per_concept[person.name] = best[:, index[person.name]]
            in_photo = np.stack([per_concept[p.name] for p in named_people])
            # A photo of a person is one where their face is recognized: others are dropped.
            recognized = np.all(in_photo >= people.calibration.alpha, axis=0)
            weakest = np.min(in_photo, axis=0)
            score = np.minimum(score, weakest) if named else score + weakest
        if self._text_embedder is not None and words:
            embedder = self._text_embedder()
            photo_vectors = self.vectors(embedder).of_paths(paths, user_id)
            text = photo_vectors @ embedder.embed_text([words])[0]
            if named or named_people:  # on the concepts' scale: standardized, and a minor part
                text = TEXT_WEIGHT * (text - text.mean()) / (text.std() + 1e-6)
            score += text
        order = [i for i in np.argsort(-score, kind="stable") if recognized[i]][:k]
        hits = [
            PhotoHit(
                photos[i].doc_id,
                paths[i],
                float(score[i]),
                {name: float(values[i]) for name, values in per_concept.items()},
            )
            for i in order
        ]
        return PhotoSearch(hits, unused)


def _names(name: str, query: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", query, re.IGNORECASE) is not None
