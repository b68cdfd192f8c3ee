"""Image requests of different users, each with their own adapter, from many threads at once
through one engine and one image model: every image equals the same request made alone
(an adapter never leaks into another user's request), and provenance names only the user's
own subject and artifact."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pgen.context import Subject, User
from pgen.context.store import SQLiteStore
from pgen.engine import Engine
from pgen.models.image import ImageGenerationConfig, load_image_model
from pgen.personalize import ImageRequest
from pgen.personalize.subject import train_subject
from pgen.training.subject_artifacts import SubjectTrainingConfig

FAST = ImageGenerationConfig(steps=2, guidance_scale=2.0, seed=5)
TRAIN = SubjectTrainingConfig(steps=2, learning_rate=5e-2)


@pytest.fixture
def engine(tmp_path: Path, tiny_sd: Path, reference_images: list[Path]) -> Engine:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    paths = [str(p) for p in reference_images]
    store.add(
        [
            User(user_id="ana"),
            Subject(user_id="ana", name="rex", class_word="dog", image_paths=paths[:2]),
            User(user_id="bob"),
            Subject(user_id="bob", name="tom", class_word="cat", image_paths=paths[1:]),
        ]
    )
    model = load_image_model(str(tiny_sd))
    train_subject(store, "ana", "rex", model, "dreambooth-lora", TRAIN)
    train_subject(store, "bob", "tom", model, "textual-inversion", TRAIN)
    return Engine(store, lambda: pytest.fail("no text model"), lambda: None, image_model=model)


def _pixels(engine: Engine, request: ImageRequest) -> tuple[np.ndarray, list[str], list[str]]:
    result = engine.generate_image(request, FAST)
    with open(result.paths[0], "rb") as handle:
        from PIL import Image

        pixels = np.asarray(Image.open(handle).convert("RGB"), dtype=np.int16)
    return pixels, result.provenance.subjects, result.provenance.artifacts


def test_threads_never_see_another_users_adapter(engine: Engine) -> None:
    requests = [
        ImageRequest("ana", "rex on a beach", "subject"),
        ImageRequest("bob", "tom on a beach", "subject"),
        ImageRequest("ana", "a dog on a beach", "none"),
        ImageRequest("bob", "a cat on a beach", "none"),
    ]
    alone = [_pixels(engine, request) for request in requests]
    # The adapters change the images (or this test could not see a leak).
    assert np.abs(alone[0][0] - alone[2][0]).max() > 0
    assert alone[0][2] and alone[1][2] and alone[0][2] != alone[1][2]

    mixed = requests * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda r: _pixels(engine, r), mixed))
    for request, (pixels, subjects, artifacts) in zip(mixed, together, strict=True):
        expected = alone[requests.index(request)]
        np.testing.assert_array_equal(pixels, expected[0])
        own = {"ana": "rex", "bob": "tom"}[request.user_id]
        assert set(subjects) <= {own}
        assert all(f"{request.user_id}-" in Path(a).parent.parent.name for a in artifacts)
