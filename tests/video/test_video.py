"""The video modality end to end on tiny random models: a subject trained for images animated
by AnimateDiff through ``Engine.generate``; the clip's file, shape and provenance; the adapter
applied; stale artifacts and bad input refused with nothing written; delete-user forgets it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pgen.components import VideoRequest
from pgen.config import Config
from pgen.context import Subject, User
from pgen.engine import Engine
from pgen.errors import InvalidRequest
from pgen.models.video import VideoGenerationSettings, read_frames
from pgen.training.subject_artifacts import SubjectTrainingSettings
from pgen.training.subject_trainer import train_subject

FAST = VideoGenerationSettings(steps=2, guidance_scale=2.0)
TRAIN = SubjectTrainingSettings(steps=2, learning_rate=1e-2)


@pytest.fixture
def photos(tmp_path: Path, reference_images: list[Path]) -> list[Path]:
    return [Path(shutil.copy(p, tmp_path / p.name)) for p in reference_images]


@pytest.fixture
def engine(tmp_path: Path, tiny_sd: Path, photos: list[Path]) -> Iterator[Engine]:
    config = Config(home=tmp_path / "home", image_model=str(tiny_sd), threads=1)
    with Engine.open(config) as engine:
        paths = list(map(str, photos))
        engine.ingest(
            [
                User(user_id="ana"),
                User(user_id="bob"),
                Subject(user_id="ana", name="rex", class_word="dog", image_paths=paths),
                Subject(user_id="ana", name="mug", class_word="cup", image_paths=paths[:1]),
            ]
        )
        yield engine


def _clip(engine: Engine, strategy: str, motion: Path, **options: object) -> VideoRequest:
    return VideoRequest("ana", "rex on a beach", strategy, motion_adapter=str(motion), **options)  # type: ignore[arg-type]


def _pixels(path: Path) -> np.ndarray:
    return np.stack([np.asarray(frame, dtype=np.float32) for frame in read_frames(path)])


def _files(engine: Engine) -> set[Path]:
    return {p for p in engine.store.artifacts_root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("method", ["dreambooth-lora", "textual-inversion"])
def test_a_trained_subject_is_animated_and_recorded(
    engine: Engine, tiny_motion: Path, method: str
) -> None:
    folder = train_subject(engine.store, "ana", "rex", engine.image_model, method, TRAIN)
    vocab = len(engine.image_model.pipe.tokenizer)
    plain = engine.generate(_clip(engine, "none", tiny_motion, frames=4, fps=4), generation=FAST)
    mine = engine.generate(_clip(engine, "subject", tiny_motion, frames=4, fps=4), generation=FAST)

    (clip,) = mine.media
    assert clip.is_file() and clip.suffix == ".mp4"
    assert clip.is_relative_to(engine.store.artifacts_root)  # the user's, so deletable
    frames = read_frames(clip)
    assert len(frames) == 4 and frames[0].size == (32, 32)
    assert mine.provenance.subjects == ["rex"]
    assert mine.provenance.artifacts == [str(folder), str(tiny_motion)]
    assert mine.details["method"] == method and mine.details["fps"] == 4
    assert f"ana/rex/{method}" in mine.provenance.model
    assert plain.provenance.subjects == [] and "__base__" in plain.provenance.model
    # Same seed, same noise: only the subject's adapter (and its token) tells them apart.
    assert np.abs(_pixels(clip) - _pixels(plain.media[0])).mean() > 1.0
    (stored,) = [o for o in engine.outputs("ana") if o.output_id == mine.output_id]
    assert stored.modality == "video" and stored.media == [str(clip)]
    assert stored.provenance["motion_adapter"] == str(tiny_motion)
    # The subject's weights were for that request only: the image pipeline is as it was.
    assert len(engine.image_model.pipe.tokenizer) == vocab  # a learned token is unloaded
    again = engine.generate(_clip(engine, "none", tiny_motion, frames=4, fps=4), generation=FAST)
    assert np.abs(_pixels(again.media[0]) - _pixels(plain.media[0])).max() <= 2.0


def test_a_stale_subject_artifact_is_refused(
    engine: Engine, tiny_motion: Path, photos: list[Path]
) -> None:
    train_subject(engine.store, "ana", "rex", engine.image_model, "dreambooth-lora", TRAIN)
    photos[1].write_bytes(photos[0].read_bytes())  # the user replaced a reference photo
    before = _files(engine)
    with pytest.raises(ValueError, match="dreambooth-lora artifact is stale: its reference"):
        engine.generate(_clip(engine, "subject", tiny_motion, frames=2), generation=FAST)
    assert _files(engine) == before and engine.outputs("ana") == []


def test_bad_requests_are_refused_before_anything_is_written(
    engine: Engine, tiny_motion: Path, tmp_path: Path
) -> None:
    train_subject(engine.store, "ana", "rex", engine.image_model, "dreambooth-lora", TRAIN)
    before = _files(engine)
    cases = [
        (_clip(engine, "none", tiny_motion, frames=0), "frames must be between 1 and 32"),
        (_clip(engine, "none", tiny_motion, frames=33), "frames must be between 1 and 32"),
        (_clip(engine, "none", tiny_motion, fps=0), "fps must be between 1 and 60"),
        (_clip(engine, "subject", tiny_motion, subject="rover"), "has no subject 'rover'"),
        (_clip(engine, "subject", tiny_motion, subject="mug"), "'mug' of user 'ana' has no"),
        (
            _clip(engine, "subject", tiny_motion, method="ip-adapter"),
            "video takes a trained subject method",
        ),
        (
            VideoRequest("ana", "x", motion_adapter=str(tmp_path / "nowhere")),
            "motion adapter .*nowhere.*: no such file or folder",
        ),
        (VideoRequest("bob", "rex on a beach", "subject"), "names none of user 'bob'"),
        (
            VideoRequest("bob", "x", motion_adapter=str(engine.store.artifacts_root)),
            "the store's files are not models",
        ),
    ]
    for request, message in cases:
        with pytest.raises(InvalidRequest, match=message):
            engine.check(request)
        with pytest.raises(InvalidRequest, match=message):
            engine.generate(request, generation=FAST)
    # More frames than the motion adapter was trained for (8): refused before any clip.
    with pytest.raises(ValueError, match="frames must be between 1 and 8"):
        engine.generate(_clip(engine, "none", tiny_motion, frames=12), generation=FAST)
    assert _files(engine) == before
    assert engine.outputs("ana") == [] and engine.outputs("bob") == []


def test_delete_user_forgets_clips_and_subject_artifacts(engine: Engine, tiny_motion: Path) -> None:
    train_subject(engine.store, "ana", "rex", engine.image_model, "dreambooth-lora", TRAIN)
    made = engine.generate(_clip(engine, "subject", tiny_motion, frames=2), generation=FAST)
    theirs = engine.generate(
        VideoRequest("bob", "a beach", motion_adapter=str(tiny_motion), frames=2), generation=FAST
    )
    clip = made.media[0]
    assert clip.is_file()
    engine.delete_user("ana")
    assert not clip.exists() and not clip.parent.exists()
    root = engine.store.artifacts_root
    leftovers = [p for p in _files(engine) if p.relative_to(root).parts[0].startswith("ana-")]
    assert leftovers == []
    assert not engine.store.has_user("ana")
    assert theirs.media[0].is_file()  # another user's clip stays
    assert [o.modality for o in engine.outputs("bob")] == ["video"]
