"""Image generation under concurrency: threads generating for users with different
subject adapters (DreamBooth LoRA, textual inversion, none) each get exactly the images
a single request gets alone: no request runs with another user's adapter loaded."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from pgen.context import Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.models.image import DiffusersImageModel, ImageGenerationSettings, load_image_model
from pgen.personalize.subject import generate_subject
from pgen.training.subject_artifacts import SubjectTrainingSettings
from pgen.training.subject_trainer import train_subject

FAST = ImageGenerationSettings(steps=2, guidance_scale=2.0)
TRAIN = SubjectTrainingSettings(steps=2, learning_rate=5e-2)
# user -> (subject, its class word, how it is learned; None: the base model only)
USERS = {
    "ana": ("rex", "dog", "dreambooth-lora"),
    "bob": ("tom", "cat", "textual-inversion"),
    "cy": ("max", "dog", "dreambooth-lora"),
    "dee": ("kit", "cat", None),
}


@pytest.fixture
def setting(
    tmp_path: Path, tiny_sd: Path, reference_images: list[Path]
) -> tuple[SQLiteStore, DiffusersImageModel]:
    model = load_image_model(str(tiny_sd), dtype="float32")
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    paths = [str(p) for p in reference_images]
    for user, (name, word, _) in USERS.items():
        store.add(
            [
                User(user_id=user),
                Subject(user_id=user, name=name, class_word=word, image_paths=paths),
            ]
        )
    for user, (name, _, method) in USERS.items():
        if method is not None:
            train_subject(store, user, name, model, method, TRAIN)
    return store, model


def _pixels(images: list) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.float32) for image in images])


def test_threads_get_their_own_adapters_images(
    setting: tuple[SQLiteStore, DiffusersImageModel],
) -> None:
    store, model = setting

    def generate(user: str) -> tuple[np.ndarray, dict]:
        name, word, method = USERS[user]
        if method is None:  # the base model, no adapter, in between the others
            return _pixels(model.render(f"a {word} on a beach", FAST)), {}
        out = generate_subject(store, user, f"a {name} on a beach", model, FAST, method=method)
        return _pixels(out.images), out.provenance

    expected = {user: generate(user) for user in USERS}
    # The adapters make a difference, or the test could not see a leak.
    assert np.abs(expected["ana"][0] - expected["dee"][0]).mean() > 0.5
    assert np.abs(expected["ana"][0] - expected["cy"][0]).mean() > 0.1
    problems: list[str] = []
    start = threading.Barrier(len(USERS) * 2)

    def work(user: str) -> None:
        start.wait()
        for _ in range(2):
            pixels, provenance = generate(user)
            if np.abs(pixels - expected[user][0]).max() > 2:
                problems.append(f"{user}'s images differ from their single-request images")
            others = [u for u in USERS if u != user]
            if any(f"/{u}-" in str(provenance.get("artifacts")) for u in others):
                problems.append(f"{user}'s provenance names another user's artifact")

    threads = [threading.Thread(target=work, args=(u,)) for u in USERS for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert problems == []
    store.close()
