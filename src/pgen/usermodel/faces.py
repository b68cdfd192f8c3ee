"""The user's people: face subjects recognized in their photos, calibrated per person.

A face subject is one of the user's subjects whose class word is ``person`` ("my mother
Anna", with reference photos). Each reference photo contributes its largest face; a
person's prototype is the mean of those identity vectors. A photo may hold many faces
(group photos): every face is compared with every person.

Calibration follows the concept memory (``usermodel/concepts.py``): per person,
``positive`` is how similar the references are to each other (leave one out) and
``negative`` a high quantile of how similar the negatives look (the user's *other* people
and the faces in the operator's negative pool; never another user's photos), and a face's
confidence is its score on that scale. One ``alpha`` decides, fit on other people.

Privacy: faces are recognized only as one of the user's named people; any other face is
counted, never identified or compared across users. A photo's faces (boxes and vectors)
are cached under the user who owns the photo, as that user's image embeddings, so
delete-user removes them with everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pgen.context.base import ContextStore
from pgen.context.records import Subject
from pgen.models.face import Face, FaceEmbedder
from pgen.models.image_input import check_image_path, file_hash, open_image
from pgen.usermodel.concepts import MIN_SPREAD, Calibration, calibrate

FACE_CLASS_WORD = "person"
MAX_FACES = 16  # a photo's faces cached at most (largest first); more is a crowd, not people
ROW = 5  # cached per face: present flag and box (left, top, right, bottom), then the vector
# From the real-face benchmark (docs/benchmarks.md, dlib): alpha is the mean of the alphas
# fit on held-out folds (0.61-0.73; 0.5 let in one wrong person in 7 to 5 photos), and the
# defaults stand in for a person with one reference or a user with no negatives (cosines
# of dlib's unit vectors on real photos: one person 0.93-0.98, two people 0.83 median,
# 0.89 at the 95th percentile).
FACE_CALIBRATION = Calibration(alpha=0.68, default_positive=0.95, default_negative=0.9)
# Two references of one person below this cosine are not the same person: no pair of one
# person's photos was below 0.92 on the benchmark, 4% of pairs of two people were above.
SAME_PERSON = 0.9


class FaceError(ValueError):
    """A face subject that cannot be used: a reference without a face, or two people."""


def is_face_subject(subject: Subject) -> bool:
    return subject.class_word.strip().lower() == FACE_CLASS_WORD


class FaceVectors:
    """The faces of images, cached in the store per image content and face model, under the
    user who owns the image."""

    def __init__(
        self,
        embedder: FaceEmbedder,
        store: ContextStore | None = None,
        allowed: Sequence[Path] | None = None,
    ) -> None:
        self.embedder, self.store, self.allowed = embedder, store, allowed

    @property
    def cache_id(self) -> str:
        return f"faces:{self.embedder.model_id}"

    def _encode(self, faces: list[Face]) -> np.ndarray:
        row = np.zeros((MAX_FACES, ROW + self.embedder.dim), dtype=np.float32)
        for i, face in enumerate(faces[:MAX_FACES]):
            row[i, 0] = 1.0
            row[i, 1:ROW] = face.box
            row[i, ROW:] = face.vector
        return row.ravel()

    def _decode(self, flat: np.ndarray) -> list[Face]:
        rows = flat.reshape(MAX_FACES, ROW + self.embedder.dim)
        return [
            Face((int(r[1]), int(r[2]), int(r[3]), int(r[4])), r[ROW:].copy())
            for r in rows
            if r[0] > 0.5
        ]

    def of_image(self, image: Image.Image) -> list[Face]:
        return self.embedder.faces(image)

    def of_paths(
        self,
        paths: Sequence[str],
        user_id: str | None = None,
        check: Callable[[list[list[Face]]], None] | None = None,
    ) -> list[list[Face]]:
        """Every image's faces; with a store and a user, cached under the user. ``check``
        sees them all before anything is written (a bad reference writes nothing)."""
        if self.store is None or user_id is None:
            found = [self.of_image(open_image(p, self.allowed)) for p in paths]
            if check is not None:
                check(found)
            return found
        keys = [f"{file_hash(check_image_path(p, self.allowed))}:faces" for p in paths]
        dim = MAX_FACES * (ROW + self.embedder.dim)
        cached = self.store.image_embeddings(user_id, self.cache_id, dim, keys)
        fresh: dict[str, np.ndarray] = {}
        for path, key in zip(paths, keys, strict=True):
            if key not in cached and key not in fresh:
                fresh[key] = self._encode(self.of_image(open_image(path, self.allowed)))
        found = [self._decode(cached[key] if key in cached else fresh[key]) for key in keys]
        if check is not None:
            check(found)
        if fresh:
            self.store.put_image_embeddings(user_id, self.cache_id, list(fresh.items()))
        return found


@dataclass(frozen=True)
class Person:
    name: str
    references: tuple[str, ...]
    prototype: np.ndarray
    positive: float
    negative: float

    def confidence(self, score: float | np.ndarray) -> float | np.ndarray:
        return (score - self.negative) / max(self.positive - self.negative, MIN_SPREAD)


@dataclass(frozen=True)
class FaceMatch:
    """One face of a photo recognized as one of the user's people."""

    name: str
    position: str  # left, center, right
    box: tuple[int, int, int, int]
    score: float  # cosine to the person's prototype
    confidence: float  # on the person's calibrated scale


@dataclass(frozen=True)
class Recognized:
    """Who is in one photo: the user's people recognized, and how many faces are not."""

    people: list[FaceMatch]
    unknown: int
    faces: int

    def grounding(self) -> str:
        """The prompt's line: 'In this photo: Anna (left), Ben (right); 1 other face.'"""
        if not self.faces:
            return "No face is detected in this photo."
        named = ", ".join(f"{m.name} ({m.position})" for m in self.people) or "none of their people"
        other = f"; {self.unknown} other face{'s' * (self.unknown != 1)}" if self.unknown else ""
        return f"The user's people in this photo: {named}{other}."


def check_references(
    subjects: Sequence[Subject], user_id: str
) -> Callable[[list[list[Face]]], None]:
    """The check every face subject's references pass: a face in each photo, and one
    person across them (a subject that mixes people would recognize someone the user never
    named, so it is refused, not warned about)."""

    def check(found: list[list[Face]]) -> None:
        at = 0
        for subject in subjects:
            faces = found[at : at + len(subject.image_paths)]
            at += len(subject.image_paths)
            for path, in_photo in zip(subject.image_paths, faces, strict=True):
                if not in_photo:
                    raise FaceError(
                        f"subject {subject.name!r} of user {user_id!r}: reference photo "
                        f"{path!r} shows no face (a person subject needs a face in every one)"
                    )
            vectors = [f[0].vector for f in faces]
            for i in range(len(vectors)):
                for j in range(i + 1, len(vectors)):
                    cosine = float(vectors[i] @ vectors[j])
                    if cosine < SAME_PERSON:
                        raise FaceError(
                            f"subject {subject.name!r} of user {user_id!r}: reference photos "
                            f"{subject.image_paths[i]!r} and {subject.image_paths[j]!r} show "
                            f"different people (face cosine {cosine:.2f}, one person is above "
                            f"{SAME_PERSON}); give photos of one person only"
                        )

    return check


class FaceMemory:
    """The people of one user, calibrated; built from their data only."""

    def __init__(self, people: list[Person], calibration: Calibration) -> None:
        self.people, self.calibration = people, calibration

    @classmethod
    def build(
        cls,
        entries: Sequence[tuple[str, Sequence[str], np.ndarray]],
        calibration: Calibration = FACE_CALIBRATION,
        negative_pool: np.ndarray | None = None,
    ) -> FaceMemory:
        """From (name, reference paths, reference face vectors), calibrated as concepts are."""
        scales = calibrate([vectors for *_, vectors in entries], calibration, negative_pool)
        people = [
            Person(name, tuple(paths), proto, positive, negative)
            for (name, paths, _), (proto, positive, negative) in zip(entries, scales, strict=True)
        ]
        return cls(people, calibration)

    def scores(self, faces: list[Face]) -> np.ndarray:
        """(len(faces), len(people)) cosines to the people's prototypes."""
        prototypes = np.stack([p.prototype for p in self.people])
        return np.asarray(np.stack([f.vector for f in faces]) @ prototypes.T)

    def confidences(self, faces: list[Face]) -> np.ndarray:
        """(len(faces), len(people)) calibrated confidences."""
        if not faces or not self.people:
            return np.zeros((len(faces), len(self.people)), dtype=np.float32)
        scores = self.scores(faces)
        return np.stack([p.confidence(scores[:, j]) for j, p in enumerate(self.people)], 1)

    def photo_confidence(self, faces: list[Face]) -> np.ndarray:
        """(len(people),) each person's best face in the photo (-inf: no face at all)."""
        if not faces:
            return np.full(len(self.people), -np.inf)
        return np.asarray(self.confidences(faces).max(axis=0), dtype=np.float64)

    def recognize(self, faces: list[Face], width: int) -> Recognized:
        """Each accepted person on at most one face and each face at most one person, the
        most confident pairs first; every other face stays unnamed."""
        if not faces or not self.people:
            return Recognized([], len(faces), len(faces))
        conf, scores = self.confidences(faces), self.scores(faces)
        pairs = sorted(np.ndindex(conf.shape), key=lambda ij: -conf[ij])
        used_faces: set[int] = set()
        used_people: set[int] = set()
        matches = []
        for i, j in pairs:
            if conf[i, j] < self.calibration.alpha:
                break
            if i in used_faces or j in used_people:
                continue
            used_faces.add(i)
            used_people.add(j)
            face = faces[i]
            matches.append(
                FaceMatch(
                    self.people[j].name,
                    face.position(width),
                    face.box,
                    float(scores[i, j]),
                    float(conf[i, j]),
                )
            )
        matches.sort(key=lambda m: m.box[0])  # left to right, as the photo reads
        return Recognized(matches, len(faces) - len(matches), len(faces))


def load_face_memory(
    store: ContextStore,
    user_id: str,
    vectors: FaceVectors,
    calibration: Calibration = FACE_CALIBRATION,
    negative_pool: np.ndarray | None = None,
) -> FaceMemory:
    """The user's face memory from their person subjects (faces cached in the store)."""
    subjects = [s for s in store.subjects(user_id) if is_face_subject(s)]
    paths = [p for s in subjects for p in s.image_paths]
    found = vectors.of_paths(paths, user_id, check_references(subjects, user_id))
    entries = []
    at = 0
    for subject in subjects:
        faces = found[at : at + len(subject.image_paths)]
        at += len(subject.image_paths)
        entries.append((subject.name, subject.image_paths, np.stack([f[0].vector for f in faces])))
    return FaceMemory.build(entries, calibration, negative_pool)
