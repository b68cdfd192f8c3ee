"""Two of a user's subjects in one image: adapters stacked (naive) or one per region
(sequential inpainting), on the same seed; identity mixing measured; bad input refused."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgen.components import ImageRequest
from pgen.config import Config
from pgen.context import Subject, User
from pgen.engine import Engine
from pgen.errors import InvalidRequest
from pgen.evaluate.metrics.image import DinoEncoder
from pgen.evaluate.metrics.subjects import identity_mixing
from pgen.models.base import ImageGenerationSettings
from pgen.training.subject_artifacts import SubjectTrainingSettings
from pgen.training.subject_trainer import train_subject

FAST = ImageGenerationSettings(steps=3, guidance_scale=2.0, seed=7)
TRAIN = SubjectTrainingSettings(steps=2, learning_rate=1e-2)


@pytest.fixture
def engine(tmp_path: Path, tiny_sd: Path, reference_images: list[Path]) -> Iterator[Engine]:
    photos = [str(shutil.copy(p, tmp_path / p.name)) for p in reference_images]
    with Engine.open(Config(home=tmp_path / "home", image_model=str(tiny_sd), threads=1)) as engine:
        engine.ingest(
            [
                User(user_id="ana"),
                Subject(user_id="ana", name="rex", class_word="dog", image_paths=photos[:2]),
                Subject(user_id="ana", name="mug", class_word="cup", image_paths=photos[2:]),
                Subject(user_id="ana", name="kit", class_word="cat", image_paths=photos[:1]),
            ]
        )
        model = engine.image_model
        train_subject(engine.store, "ana", "rex", model, "dreambooth-lora", TRAIN)
        train_subject(engine.store, "ana", "mug", model, "dreambooth-lora", TRAIN)
        yield engine


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32)


def test_stacked_and_regional_subjects_on_the_same_seed(
    engine: Engine, tiny_dino: Path, reference_images: list[Path]
) -> None:
    model = engine.image_model
    vocab = len(model.pipe.tokenizer)
    made = {}
    for method in ("stack", "regions"):
        request = ImageRequest("ana", "rex and mug on the beach", "subjects", method=method)
        made[method] = engine.generate_image(request, FAST)
    stack, regions = made["stack"], made["regions"]
    assert stack.provenance.subjects == ["rex", "mug"] == regions.provenance.subjects
    assert len(regions.provenance.artifacts) == 2
    assert [r["box"] for r in regions.details["regions"]] == [(0.0, 0.5), (0.5, 1.0)]
    assert regions.prompt == "sks dog and sks cup on the beach"
    # The stacked image is the regional method's first step: inpainting changed it.
    assert np.abs(_pixels(stack.paths[0]) - _pixels(regions.paths[0])).mean() > 1.0
    # Every adapter was for that request only.
    assert not model.pipe.get_list_adapters() and len(model.pipe.tokenizer) == vocab

    dino = DinoEncoder(str(tiny_dino))
    bands = [("rex", (0.0, 0.5)), ("mug", (0.5, 1.0))]
    refs = {"rex": reference_images[:2], "mug": reference_images[2:]}
    for result in (stack, regions):
        mixing = identity_mixing(result.paths, bands, refs, dino)
        assert mixing["regions"] == 2 and 0.0 <= mixing["leak_rate"] <= 1.0
        assert mixing["gap"] == pytest.approx(mixing["own"] - mixing["other"])


def test_bad_subject_sets_are_refused_and_write_nothing(engine: Engine) -> None:
    cases = [
        ("rex, mug and kit on the beach", None, "names 3 subjects .*at most 2"),
        ("rex on the beach", None, "names 1 of the subjects of user 'ana'"),
        ("rex and kit on the beach", None, "'kit' of user 'ana' has no trained artifact"),
        ("rex and mug", "blend", "method 'blend'; choose from stack, regions"),
    ]
    for instruction, method, message in cases:
        request = ImageRequest("ana", instruction, "subjects", method=method)
        with pytest.raises(InvalidRequest, match=message):
            engine.generate_image(request, FAST)
    assert engine.outputs("ana") == []
    assert not list(engine.store.artifacts_root.rglob("*.png"))
