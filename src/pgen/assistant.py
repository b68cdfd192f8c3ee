"""The personal multimodal assistant: answers about a user's photo, and finds their photos.

``Assistant.answer`` reads top to bottom like a text request: check the photo (nothing is
written when it is bad) → the user's concept memory (their subjects, reference vectors
cached in the store) → the strategy builds the vision chat → the VLM answers → the output
is saved with provenance. ``Assistant.search_photos`` ranks the user's photos (documents
of kind ``photo`` whose ``fields["image_path"]`` names the image) by the concepts a query
names, by the query's words when a text-image embedder (CLIP, SigLIP) is configured, or
by both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pgen.context.base import ContextStore
from pgen.models.base import GenerationConfig
from pgen.models.image_embedding import ImageEmbedder, TextImageEmbedder
from pgen.models.image_input import file_hash, open_image
from pgen.models.vision import TransformersVisionModel, VisionLanguageModel
from pgen.personalize.concepts import (
    AnswerRequest,
    LearnedConcept,
    VisionTools,
)
from pgen.training.concept_tokens import (
    ConceptTokenConfig,
    load_concept_tokens,
    save_concept_tokens,
    train_concept_tokens,
)
from pgen.usermodel.concepts import Calibration, ConceptMemory, ImageVectors, load_memory

PHOTO_KIND = "photo"
TOKENS_KIND = "concept-tokens"  # the artifact kind of learned concept tokens
TEXT_WEIGHT = 0.25  # composed search: weight of the (standardized) text score


@dataclass(frozen=True)
class Answer:
    output_id: str
    text: str
    strategy: str
    provenance: dict[str, Any]


@dataclass(frozen=True)
class PhotoHit:
    doc_id: str
    image_path: str
    score: float
    concepts: dict[str, float] = field(default_factory=dict)  # named concept -> confidence


def _component(value: Callable[[], Any] | Any) -> Callable[[], Any]:
    from pgen.factory import Lazy

    return Lazy(value)


class Assistant:
    def __init__(
        self,
        store: ContextStore,
        vision_model: Callable[[], VisionLanguageModel] | VisionLanguageModel,
        image_embedder: Callable[[], ImageEmbedder] | ImageEmbedder,
        *,
        allowed: Sequence[Path] | None = None,
        calibration: Calibration | None = None,
        negative_pool: Sequence[Path] = (),
        text_image_embedder: Callable[[], TextImageEmbedder] | TextImageEmbedder | None = None,
        generation: GenerationConfig | None = None,
    ) -> None:
        self.store = store
        self._vision_model = _component(vision_model)
        self._embedder = _component(image_embedder)
        self._text_embedder = _component(text_image_embedder) if text_image_embedder else None
        self.allowed = list(allowed) if allowed is not None else None
        self.calibration = calibration or Calibration()
        self.negative_pool = list(negative_pool)  # operator's images, never a user's
        self._pool_vectors: dict[str, np.ndarray] = {}
        self.generation = generation or GenerationConfig()

    def vectors(self, embedder: ImageEmbedder | None = None) -> ImageVectors:
        return ImageVectors(embedder or self._embedder(), self.store, allowed=self.allowed)

    def memory(self, user_id: str) -> ConceptMemory:
        return load_memory(self.store, user_id, self.vectors(), self.calibration, self._pool())

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

    def answer(
        self,
        user_id: str,
        image_path: str | Path,
        instruction: str,
        strategy: str = "concepts",
        k: int = 2,
    ) -> Answer:
        from pgen.personalize import get_strategy

        chosen = get_strategy("vision", strategy)  # an unknown name fails before anything
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not instruction.strip():
            raise ValueError("the instruction is empty")
        self.store.user(user_id)  # an unknown user fails before any model loads
        image = open_image(image_path, self.allowed, denied=[self.store.artifacts_root])
        request = AnswerRequest(user_id, image, str(image_path), instruction, strategy, k)
        tools = VisionTools(
            memory=self.memory,
            query_vector=lambda im: ImageVectors(self._embedder()).of_images([im])[0],
            concept_tokens=self.learned_concepts,
            placeholder=lambda: self._soft_model().placeholder,
        )
        prepared = chosen.prepare([request], tools)[0]
        model = self._vision_model()
        if prepared.soft_tokens is not None:
            soft = [prepared.soft_tokens]
            text = self._soft_model().generate([prepared.chat], self.generation, soft)[0]
        else:
            text = model.generate([prepared.chat], self.generation)[0]
        prepared.provenance.model = model.name
        provenance = {
            **prepared.provenance.as_dict(),
            **prepared.details,
            "image": str(image_path),
            "embedder": self._embedder().model_id,
        }
        saved = self.store.save_output(user_id, instruction, strategy, text, provenance)
        return Answer(saved.output_id, text, strategy, provenance)

    # -- concept tokens -----------------------------------------------------------------
    def _soft_model(self) -> TransformersVisionModel:
        model = self._vision_model()
        if not isinstance(model, TransformersVisionModel):
            raise ValueError(
                f"concept tokens need a transformers vision model, not {model.name} "
                "(a server takes no input vectors)"
            )
        return model

    def train_concept_tokens(
        self, user_id: str, concept: str, config: ConceptTokenConfig | None = None
    ) -> Path:
        """Learn the concept's tokens from its references (the user's other concepts and
        the operator's pool as hard negatives) and save them as the user's artifact."""
        self.store.user(user_id)
        subjects = {s.name: s for s in self.store.subjects(user_id)}
        if concept not in subjects:
            known = ", ".join(subjects) or "none"
            raise ValueError(f"user {user_id!r} has no concept {concept!r}; known: {known}")
        subject = subjects[concept]
        positives = [open_image(p, self.allowed) for p in subject.image_paths]
        others = [p for s in subjects.values() if s.name != concept for p in s.image_paths]
        negatives = [open_image(p, self.allowed) for p in others]
        negatives += [open_image(p) for p in self.negative_pool]
        model = self._soft_model()
        config = config or ConceptTokenConfig()
        tokens, losses = train_concept_tokens(
            model, concept, subject.class_word, positives, negatives, config
        )
        folder = self.store.artifact_path(user_id, TOKENS_KIND, concept)
        meta = {
            "concept": concept,
            "class_word": subject.class_word,
            "base_model": model.name,
            "hidden_size": model.hidden_size,
            "references": [file_hash(p) for p in subject.image_paths],
            "negatives": len(negatives),
            "steps": config.steps,
            "learning_rate": config.learning_rate,
            "seed": config.seed,
            "losses": losses,
        }
        save_concept_tokens(folder, tokens, meta)
        return folder

    def learned_concepts(self, user_id: str) -> list[LearnedConcept]:
        """The user's trained concept tokens (stale ones are refused, with the fix)."""
        subjects = {s.name: s for s in self.store.subjects(user_id)}
        learned = []
        for (kind, name), folder in sorted(self.store.artifacts(user_id).items()):
            if kind != TOKENS_KIND or name not in subjects:
                continue
            references = [file_hash(p) for p in subjects[name].image_paths]
            tokens, meta = load_concept_tokens(folder, self._soft_model().name, references)
            learned.append(LearnedConcept(name, meta["class_word"], tokens, str(folder)))
        return learned

    # -- photo retrieval ----------------------------------------------------------------
    def search_photos(self, user_id: str, query: str, k: int = 10) -> list[PhotoHit]:
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
        if not photos:
            return []
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
        return [
            PhotoHit(
                photos[i].doc_id,
                paths[i],
                float(score[i]),
                {name: float(values[i]) for name, values in per_concept.items()},
            )
            for i in order
        ]
