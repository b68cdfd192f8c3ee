"""The concept memory: per-concept calibration, "none of my concepts", cached vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgen.context.records import Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.models.image_embedding import EfficientNetEmbedder
from pgen.usermodel.concepts import (
    Calibration,
    ConceptMemory,
    ImageVectors,
    fit_alpha,
    fit_global_threshold,
    load_memory,
)
from tests.multimodal.conftest import blob_image


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _cluster(rng: np.random.Generator, center: np.ndarray, n: int, spread: float) -> np.ndarray:
    return _unit(center + spread * rng.normal(size=(n, len(center))))


def test_per_concept_scale_adapts_to_each_concepts_spread() -> None:
    rng = np.random.default_rng(0)
    a, b = _unit(rng.normal(size=(2, 64)))
    tight, loose = _cluster(rng, a, 4, 0.05), _cluster(rng, b, 4, 0.12)
    memory = ConceptMemory.build(
        [("mug", "mug", "", (), tight), ("rex", "dog", "", (), loose)], Calibration(alpha=0.5)
    )
    mug, rex = memory.concepts
    assert mug.positive > rex.positive  # the tight concept's references agree more
    # The same raw similarity means less for a concept whose own photos agree more.
    assert mug.confidence(0.8) < rex.confidence(0.8)


def test_a_query_of_no_concept_is_none_of_them() -> None:
    rng = np.random.default_rng(1)
    centers = _unit(rng.normal(size=(3, 64)))
    entries = [(f"c{i}", "thing", "", (), _cluster(rng, c, 3, 0.08)) for i, c in enumerate(centers)]
    memory = ConceptMemory.build(entries, Calibration(alpha=0.5))
    own = memory.match(_cluster(rng, centers[1], 1, 0.08)[0], k=3)
    assert own[0].name == "c1" and own[0].accepted
    assert not any(m.accepted for m in own[1:])
    stranger = memory.match(_unit(rng.normal(size=64)), k=3)
    assert stranger and not any(m.accepted for m in stranger)


def test_threshold_moves_the_decision_and_defaults_stand_in() -> None:
    rng = np.random.default_rng(2)
    center = _unit(rng.normal(size=64))
    refs = _cluster(rng, center, 3, 0.1)
    query = _unit(center + 0.3 * rng.normal(size=64))
    strict = ConceptMemory.build([("rex", "dog", "", (), refs)], Calibration(alpha=2.0))
    lenient = ConceptMemory.build([("rex", "dog", "", (), refs)], Calibration(alpha=-1.0))
    assert not strict.match(query)[0].accepted and lenient.match(query)[0].accepted
    # One concept, no pool: no negatives, so the calibration's default stands in.
    assert strict.concepts[0].negative == Calibration().default_negative
    pool = _unit(rng.normal(size=(5, 64)))
    pooled = ConceptMemory.build([("rex", "dog", "", (), refs)], Calibration(), pool)
    assert pooled.concepts[0].negative == pytest.approx(
        float(np.quantile(pool @ pooled.concepts[0].prototype, 0.9))
    )
    single = ConceptMemory.build([("rex", "dog", "", (), refs[:1])], Calibration())
    assert single.concepts[0].positive == Calibration().default_positive


def test_fits_pick_a_cut_between_the_classes() -> None:
    values = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.35]])
    labels = np.array([[True, False], [False, True], [False, False]])
    cut = fit_alpha(values, labels)
    assert 0.35 < cut < 0.8
    assert 0.35 < fit_global_threshold(values, labels) < 0.8


def test_calibration_round_trips_and_bad_files_say_so(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    Calibration(alpha=0.4, fitted_on=["dog"]).save(path)
    assert Calibration.load(path) == Calibration(alpha=0.4, fitted_on=["dog"])
    path.write_text('{"alpha": 0.4, "colour": 1}')
    with pytest.raises(ValueError, match=r"cal\.json: not a concept calibration file"):
        Calibration.load(path)


class Counting:
    """A real embedder that counts the images it was given (to see what the cache saves)."""

    def __init__(self, inner: EfficientNetEmbedder, model_id: str | None = None) -> None:
        self.inner, self.dim, self.calls = inner, inner.dim, 0
        self.model_id = model_id or inner.model_id

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        self.calls += len(images)
        return self.inner.embed(images)


def test_reference_vectors_are_cached_per_image_and_model_and_go_with_the_user(
    tmp_path: Path, efficientnet: EfficientNetEmbedder
) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.jpg"))
        blob_image(i).save(paths[-1])
    blob_image(0).save(tmp_path / "copy.jpg")  # same content, another name
    store.add(
        [
            User(user_id="ann"),
            Subject(user_id="ann", name="Rex", class_word="dog", image_paths=paths),
        ]
    )
    store.add(
        [
            Subject(
                user_id="ann",
                name="Mug",
                class_word="mug",
                image_paths=[str(tmp_path / "copy.jpg")],
            )
        ]
    )
    counting = Counting(efficientnet)
    vectors = ImageVectors(counting, store)
    first = load_memory(store, "ann", vectors)
    assert counting.calls == 3 * 3  # three distinct contents, three views each
    again = load_memory(store, "ann", vectors)
    assert counting.calls == 9  # all from the store
    np.testing.assert_allclose(first.concepts[0].prototype, again.concepts[0].prototype, atol=1e-6)
    # Another fingerprint of the same model: old vectors are dropped, never mixed.
    changed = Counting(efficientnet, model_id="efficientnet-lite0#000000000000")
    load_memory(store, "ann", ImageVectors(changed, store))
    assert changed.calls == 9
    assert store.row_counts("ann")["image_embeddings"] == 9  # the old model's are gone
    counts = store.delete_user("ann")
    assert counts["image_embeddings"] == 9
    assert store.row_counts()["image_embeddings"] == 0
    store.close()


def test_per_concept_calibration_transfers_to_many_concepts_of_one_class() -> None:
    """The issue's failure mode, on vectors: fit on a user whose concepts are unrelated
    (cross-similarity ~0), then apply to a user with six concepts of one class (cross-
    similarity ~0.8, like several dogs). The global cosine threshold accepts every sibling
    (precision collapses); the per-concept scale, calibrated on the second user's own
    concepts, keeps them apart."""
    rng = np.random.default_rng(0)

    def photos(centers: np.ndarray, spread: float, n: int) -> list[np.ndarray]:
        return [_unit(c + spread * rng.normal(size=(n, 64)) / 8) for c in centers]

    def user(centers: np.ndarray, spread: float) -> tuple[list, np.ndarray, np.ndarray]:
        refs, queries = photos(centers, spread, 3), photos(centers, spread, 4)
        entries = [(f"c{i}", "dog", "", (), r) for i, r in enumerate(refs)]
        labels = np.repeat(np.arange(len(centers)), 4)[:, None] == np.arange(len(centers))[None]
        return entries, np.concatenate(queries), labels

    unrelated = _unit(rng.normal(size=(4, 64)))
    dogs = _unit(_unit(rng.normal(size=64)) + 0.5 * _unit(rng.normal(size=(6, 64))))
    fit_entries, fit_queries, fit_labels = user(unrelated, 0.6)
    fitted = ConceptMemory.build(fit_entries)
    alpha = fit_alpha(fitted.confidences(fit_queries), fit_labels)
    threshold = fit_global_threshold(fitted.scores(fit_queries), fit_labels)
    entries, queries, labels = user(dogs, 0.3)
    memory = ConceptMemory.build(entries, Calibration(alpha=alpha))

    def precision_recall(predicted: np.ndarray) -> tuple[float, float]:
        hits = float((predicted & labels).sum())
        return hits / max(int(predicted.sum()), 1), hits / float(labels.sum())

    assert precision_recall(memory.scores(queries) >= threshold)[0] < 0.3
    precision, recall = precision_recall(memory.confidences(queries) >= alpha)
    assert precision > 0.9 and recall > 0.9
