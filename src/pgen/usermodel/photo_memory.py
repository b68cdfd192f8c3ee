"""The user's photos as user modeling: their concept memory (their subjects with reference
vectors cached in the store, calibrated against the operator's negative pool) and photo
search (documents of kind ``photo`` whose ``fields["image_path"]`` names the image), ranked
by the concepts a query names, by its words with a text-image embedder (CLIP, SigLIP), or
by both."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pgen.context.base import ContextStore
from pgen.models.image_embedding import ImageEmbedder, TextImageEmbedder
from pgen.usermodel.concepts import Calibration, ConceptMemory, ImageVectors, load_memory

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
    ) -> None:
        self.store = store
        self._embedder = image_embedder
        self._text_embedder = text_image_embedder
        self.allowed = list(allowed) if allowed is not None else None
        self.calibration = calibration or Calibration()
        self.negative_pool = list(negative_pool)  # operator's images, never a user's
        self._pool_vectors: dict[str, np.ndarray] = {}

    @property
    def embedder(self) -> ImageEmbedder:
        return self._embedder()

    def vectors(self, embedder: ImageEmbedder | None = None) -> ImageVectors:
        return ImageVectors(embedder or self._embedder(), self.store, allowed=self.allowed)

    def memory(self, user_id: str) -> ConceptMemory:
        return load_memory(self.store, user_id, self.vectors(), self.calibration, self._pool())

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
        named = [
            c
            for c in memory.concepts
            if re.search(rf"(?<!\w){re.escape(c.name)}(?!\w)", query, re.IGNORECASE)
        ]
        words = query
        for concept in named:
            words = re.sub(re.escape(concept.name), " ", words, flags=re.IGNORECASE)
        words = " ".join(words.split())
        if not named and (self._text_embedder is None or not words):
            known = ", ".join(c.name for c in memory.concepts) or "none"
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
            vectors = self.vectors().of_paths(paths, user_id)
            confidence = memory.confidences(vectors)
            wanted = {c.name for c in named}
            for j, concept in enumerate(memory.concepts):
                if concept.name in wanted:
                    per_concept[concept.name] = confidence[:, j]
            # Every named concept must be there: the weakest one decides.
            score += np.min(np.stack(list(per_concept.values())), axis=0)
        if self._text_embedder is not None and words:
            embedder = self._text_embedder()
            photo_vectors = self.vectors(embedder).of_paths(paths, user_id)
            text = photo_vectors @ embedder.embed_text([words])[0]
            if named:  # on the concepts' scale: standardized, and a minor part
                text = TEXT_WEIGHT * (text - text.mean()) / (text.std() + 1e-6)
            score += text
        order = np.argsort(-score, kind="stable")[:k]
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
