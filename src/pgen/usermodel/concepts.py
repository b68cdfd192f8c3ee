"""The user's concept memory: their subjects indexed by image embedding, RAP-style.

A concept is one of the user's subjects ("my dog Rex"): a name, a class word, reference
images and an optional description (a document of kind ``concept`` titled with the name).
A query image is compared with each concept's prototype (the mean of its reference
vectors); every image is embedded as the mean of a few views (itself, its mirror image and
a center crop), which makes small shifts in pose and framing count less.

"Is it one of my concepts at all?" needs a threshold, and a single global cosine threshold
does not transfer: how similar two photos of one thing are, and how similar unrelated
things look, both vary by concept (a plain mug has many look-alikes, a patterned plushie
few). So each concept is calibrated on its own data: ``positive`` is how similar its own
references are to each other (leave one out), ``negative`` is a high quantile of how
similar its negatives look (the user's *other* concepts, and an operator's negative pool;
never another user's photos). A query's confidence is its score in those units,
``(score - negative) / (positive - negative)``, and one global ``alpha`` on that scale,
fit once on other subjects, decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pgen.context.base import ContextStore
from pgen.context.records import Subject
from pgen.models.image_embedding import ImageEmbedder
from pgen.models.image_input import check_image_path, file_hash, open_image

VIEWS = ("full", "flip", "crop")
CROP = 0.7  # the center crop keeps this share of each side
MIN_SPREAD = 0.05  # positive - negative never below this: one odd concept cannot flip signs


def view(image: Image.Image, name: str) -> Image.Image:
    if name == "full":
        return image
    if name == "flip":
        return ImageOps.mirror(image)
    if name == "crop":
        w, h = image.size
        cw, ch = max(1, int(w * CROP)), max(1, int(h * CROP))
        left, top = (w - cw) // 2, (h - ch) // 2
        return image.crop((left, top, left + cw, top + ch))
    raise ValueError(f"unknown image view {name!r}; known: {', '.join(VIEWS)}")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class ImageVectors:
    """View-averaged image vectors, cached in the store per image content, view and model
    (so a photo is embedded once, and its vectors go when its user goes)."""

    def __init__(
        self,
        embedder: ImageEmbedder,
        store: ContextStore | None = None,
        views: Sequence[str] = VIEWS,
        allowed: Sequence[Path] | None = None,
    ) -> None:
        self.embedder, self.store, self.views, self.allowed = embedder, store, tuple(views), allowed

    def of_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(len(images), dim) for images already open (a request's photo): not cached."""
        if not images:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        flat = self.embedder.embed([view(im, v) for im in images for v in self.views])
        return _unit(flat.reshape(len(images), len(self.views), -1).mean(axis=1))

    def of_paths(self, paths: Sequence[str | Path], user_id: str | None = None) -> np.ndarray:
        """(len(paths), dim); with a store and a user, cached under the user. Every path is
        checked (and every uncached image decoded) before anything is written."""
        if not paths:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        if self.store is None or user_id is None:
            return self.of_images([open_image(path, self.allowed) for path in paths])
        resolved = [check_image_path(path, self.allowed) for path in paths]
        keys = [f"{file_hash(path)}:{v}" for path in resolved for v in self.views]
        model, dim = self.embedder.model_id, self.embedder.dim
        cached = self.store.image_embeddings(user_id, model, dim, keys)
        n = len(self.views)
        # The first position of each key not stored yet (a photo twice is embedded once).
        first = {key: i for i, key in reversed(list(enumerate(keys)))}
        missing = sorted(i for key, i in first.items() if key not in cached)
        # A stored vector means this content was decoded once: only new images are opened.
        opened = {i // n: open_image(paths[i // n], self.allowed) for i in missing}
        if missing:
            fresh = self.embedder.embed([view(opened[i // n], self.views[i % n]) for i in missing])
            rows = [(keys[i], vec) for i, vec in zip(missing, fresh, strict=True)]
            self.store.put_image_embeddings(user_id, model, rows)
            cached.update(dict(rows))
        flat = np.stack([cached[key] for key in keys])
        return _unit(flat.reshape(len(paths), n, -1).mean(axis=1))


@dataclass(frozen=True)
class Calibration:
    """How scores become decisions. ``alpha`` is on the per-concept scale (0: as similar as
    its negatives, 1: as similar as its own references); the defaults stand in for a
    concept with one reference or a user with no negatives at all."""

    alpha: float = 0.35  # within the alphas fit on DreamBench folds (0.21-0.53, 3 refs)
    negative_quantile: float = 0.9
    default_positive: float = 0.75
    default_negative: float = 0.5
    fitted_on: list[str] = field(default_factory=list)  # subjects alpha was fit on

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as error:
            raise ValueError(f"{path}: not a concept calibration file ({error})") from None


@dataclass(frozen=True)
class Concept:
    name: str
    class_word: str
    description: str
    references: tuple[str, ...]
    prototype: np.ndarray
    positive: float  # mean leave-one-out similarity of its references
    negative: float  # high quantile of its negatives' similarity

    def confidence(self, score: float | np.ndarray) -> float | np.ndarray:
        return (score - self.negative) / max(self.positive - self.negative, MIN_SPREAD)


@dataclass(frozen=True)
class Match:
    name: str
    score: float  # cosine to the concept's prototype
    confidence: float  # on the concept's calibrated scale
    accepted: bool


def _positive(vectors: np.ndarray, default: float) -> float:
    if len(vectors) < 2:
        return default
    total = vectors.sum(axis=0)
    return float(np.mean([v @ _unit(total - v) for v in vectors]))


def calibrate(
    references: Sequence[np.ndarray],
    calibration: Calibration,
    negative_pool: np.ndarray | None = None,
) -> list[tuple[np.ndarray, float, float]]:
    """(prototype, positive, negative) of each entry's reference vectors: the negatives of
    one entry are the others' references and the operator's pool (never another user's)."""
    protos = [_unit(vectors.mean(axis=0)) for vectors in references]
    scales = []
    for i, vectors in enumerate(references):
        negatives = [v for j, vs in enumerate(references) if j != i for v in vs]
        if negative_pool is not None:
            negatives += list(negative_pool)
        if negatives:
            sims = np.stack(negatives) @ protos[i]
            negative = float(np.quantile(sims, calibration.negative_quantile))
        else:
            negative = calibration.default_negative
        scales.append((protos[i], _positive(vectors, calibration.default_positive), negative))
    return scales


class ConceptMemory:
    """The concepts of one user, calibrated; built from their data only."""

    def __init__(self, concepts: list[Concept], calibration: Calibration) -> None:
        self.concepts, self.calibration = concepts, calibration
        dim = concepts[0].prototype.shape[0] if concepts else 0
        self._prototypes = (
            np.stack([c.prototype for c in concepts]) if concepts else np.zeros((0, dim))
        )

    @classmethod
    def build(
        cls,
        entries: Sequence[tuple[str, str, str, Sequence[str], np.ndarray]],
        calibration: Calibration | None = None,
        negative_pool: np.ndarray | None = None,
    ) -> ConceptMemory:
        """From (name, class word, description, reference paths, reference vectors)."""
        calibration = calibration or Calibration()
        scales = calibrate([vectors for *_, vectors in entries], calibration, negative_pool)
        concepts = [
            Concept(name, class_word, description, tuple(paths), proto, positive, negative)
            for (name, class_word, description, paths, _), (proto, positive, negative) in zip(
                entries, scales, strict=True
            )
        ]
        return cls(concepts, calibration)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(len(queries), len(concepts)) cosine similarities."""
        return np.asarray(queries @ self._prototypes.T, dtype=np.float32)

    def confidences(self, queries: np.ndarray) -> np.ndarray:
        scores = self.scores(queries)
        return np.stack([c.confidence(scores[:, j]) for j, c in enumerate(self.concepts)], 1)

    def match(self, query: np.ndarray, k: int = 3) -> list[Match]:
        """The ``k`` most confident concepts for one query vector, most confident first;
        ``accepted`` says which pass the calibrated decision (none may)."""
        if not self.concepts:
            return []
        scores = self.scores(query[None])[0]
        conf = [float(c.confidence(s)) for c, s in zip(self.concepts, scores, strict=True)]
        order = sorted(range(len(conf)), key=lambda j: -conf[j])[:k]
        alpha = self.calibration.alpha
        return [
            Match(self.concepts[j].name, float(scores[j]), conf[j], conf[j] >= alpha) for j in order
        ]


def fit_alpha(confidences: np.ndarray, labels: np.ndarray) -> float:
    """The alpha with the best F1 over (query, concept) pairs; ties go to the middle of the
    best range, which leaves the most room on unseen subjects."""
    return _best_cut(confidences.ravel(), labels.ravel().astype(bool))


def fit_global_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The baseline: one raw cosine threshold for every concept, best F1."""
    return _best_cut(scores.ravel(), labels.ravel().astype(bool))


def _best_cut(values: np.ndarray, labels: np.ndarray) -> float:
    cuts = np.unique(values)
    if len(cuts) == 0 or not labels.any():
        return 0.0
    candidates = np.concatenate([(cuts[:-1] + cuts[1:]) / 2, [cuts[-1] + 1e-6]])
    f1 = []
    for cut in candidates:
        predicted = values >= cut
        tp = float(np.sum(predicted & labels))
        f1.append(2 * tp / max(predicted.sum() + labels.sum(), 1))
    best = np.flatnonzero(np.isclose(f1, max(f1)))
    return float(candidates[best[len(best) // 2]])


def descriptions(store: ContextStore, user_id: str) -> dict[str, str]:
    """Concept descriptions the user gave: documents of kind ``concept`` titled by name."""
    return {doc.title: doc.text for doc in store.documents(user_id, kind="concept") if doc.title}


def load_memory(
    store: ContextStore,
    user_id: str,
    vectors: ImageVectors,
    calibration: Calibration | None = None,
    negative_pool: np.ndarray | None = None,
    keep: Callable[[Subject], bool] | None = None,
) -> ConceptMemory:
    """The user's concept memory from their subjects (reference vectors cached in the
    store); ``keep``: which subjects are concepts (default: all)."""
    about = descriptions(store, user_id)
    subjects = [s for s in store.subjects(user_id) if keep is None or keep(s)]
    # One call for every reference: all are checked before any vector is stored.
    flat = vectors.of_paths([p for s in subjects for p in s.image_paths], user_id)
    bounds = np.cumsum([0] + [len(s.image_paths) for s in subjects])
    entries = [
        (s.name, s.class_word, about.get(s.name, ""), s.image_paths, flat[a:b])
        for s, a, b in zip(subjects, bounds[:-1], bounds[1:], strict=True)
    ]
    return ConceptMemory.build(entries, calibration, negative_pool)


def introduction(name: str, class_word: str, placeholder: str, tokens: int) -> str:
    """How a prompt introduces a concept by its learned tokens (training and use agree)."""
    return f"<{name}> is {placeholder * tokens}, the user's {class_word}."
