"""Shared tests every registered image strategy goes through: its prompt and provenance name
only its own user's subjects and items, its adapter (if any) is applied for that request
only, and the saved output records provenance in the one shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pgen.context import Interaction, Item, Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.image import DiffusersImageModel, ImageGenerationSettings, load_image_model
from pgen.models.text import TransformersTextModel
from pgen.personalize import ImageRequest, all_strategies
from pgen.personalize.subject import IPAdapterSpec

# ``subjects`` composes two trained subjects of one user (tests/video/test_subjects.py runs
# it, with its refusals); ``face-id`` needs a person with a face, FaceID weights and an
# identity embedder (tests/image/test_image_face_id.py runs the same checks); every other
# image strategy takes the one user set up here.
IMAGE_STRATEGIES = [
    s.name
    for s in all_strategies()
    if s.modality == "image" and s.name not in ("subjects", "face-id")
]
FAST = ImageGenerationSettings(steps=2, seed=0)
PROVENANCE_KEYS = {"documents", "items", "subjects", "artifacts", "model", "notes"}


@pytest.fixture(scope="module")
def image_model(tiny_sd: Path) -> DiffusersImageModel:
    return load_image_model(str(tiny_sd))


@pytest.fixture
def engine(
    tmp_path: Path,
    reference_images: list[Path],
    image_model: DiffusersImageModel,
    tiny_llama: Path,
) -> Engine:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    paths = [str(p) for p in reference_images]
    store.add(
        [
            Item(item_id="m1", title="Blade Runner", text="neon noir city"),
            Item(item_id="m2", title="Paddington", text="a bear in london"),
            User(user_id="ana"),
            Subject(user_id="ana", name="rex", class_word="dog", image_paths=paths),
            Interaction(user_id="ana", item_id="m1", rating=5),
            User(user_id="bob"),
            Subject(user_id="bob", name="max", class_word="cat", image_paths=paths[:1]),
            Interaction(user_id="bob", item_id="m2", rating=5),
        ]
    )
    text_model = TransformersTextModel(str(tiny_llama), name="tiny-llama")
    return Engine(store, text_model, lambda: pytest.fail("no embedder"), image_model=image_model)


@pytest.mark.parametrize("name", IMAGE_STRATEGIES)
def test_an_image_strategy_keeps_to_its_user(
    engine: Engine, name: str, tiny_ip_adapter: Path
) -> None:
    spec = IPAdapterSpec.for_model(engine.image_model, str(tiny_ip_adapter))
    request = ImageRequest("ana", "rex in a city", name, ip_adapter=spec)
    [prepared] = engine.prepare([request], FAST)
    assert prepared.prompt and "max" not in prepared.prompt and "cat" not in prepared.prompt
    assert set(prepared.provenance.subjects) <= {"rex"}
    assert set(prepared.provenance.items) <= {"m1"}
    assert prepared.provenance.model == engine.image_model.name

    before = engine.image_model.render("rex in a city", FAST)
    result = engine.generate_image(request, FAST)
    assert result.paths and all(path.is_file() for path in result.paths)
    stored = engine.store.output("ana", result.output_id)
    assert set(stored.provenance) >= PROVENANCE_KEYS and stored.strategy == name
    # Whatever the strategy loaded for this request is gone afterwards.
    after = engine.image_model.render("rex in a city", FAST)
    np.testing.assert_array_equal(np.asarray(before[0]), np.asarray(after[0]))
