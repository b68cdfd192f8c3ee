"""The ``3d`` modality end to end on a tiny random Shap-E: the user's subject made into a mesh
and its views from the most typical reference; the PLY file, provenance and metrics; the
same seed gives the same asset; bad input refused with nothing written; delete-user
forgets every file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgen.components import ShapeRequest
from pgen.config import Config
from pgen.context import Subject, User
from pgen.engine import Engine
from pgen.errors import InvalidRequest
from pgen.evaluate.metrics.image import ClipEncoder
from pgen.evaluate.metrics.video import asset_metrics
from pgen.models.shape import read_ply
from pgen.personalize.shape import typical_reference
from tests.builders.shape_models import save_random_shap_e

FAST = {"steps": 2, "grid_size": 16, "view_size": 8, "coarse_samples": 8, "fine_samples": 8}


@pytest.fixture(scope="module")
def tiny_shap_e(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_shap_e(tmp_path_factory.mktemp("tiny-shap-e"))


@pytest.fixture
def photos(tmp_path: Path, reference_images: list[Path]) -> list[Path]:
    """Three photos of rex and an odd one out (a flat grey frame) among them."""
    copies = [Path(shutil.copy(p, tmp_path / p.name)) for p in reference_images]
    odd = tmp_path / "odd.png"
    Image.new("RGB", (40, 48), (128, 128, 128)).save(odd)
    return [*copies, odd]


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGEN_MEDIA_ROOT", str(tmp_path))


@pytest.fixture
def engine(tmp_path: Path, tiny_shap_e: Path, photos: list[Path]) -> Iterator[Engine]:
    config = Config(home=tmp_path / "home", shape_model=str(tiny_shap_e), threads=1)
    with Engine.open(config) as engine:
        engine.ingest(
            [
                User(user_id="ana"),
                User(user_id="bob"),
                Subject(
                    user_id="ana", name="rex", class_word="dog", image_paths=list(map(str, photos))
                ),
                Subject(user_id="ana", name="mug", class_word="cup", image_paths=[str(photos[3])]),
            ]
        )
        yield engine


def _make(engine: Engine, instruction: str = "rex as a 3d figure", **options: object):  # type: ignore[no-untyped-def]
    from pgen.models.shape import ShapeSettings

    return engine.generate(
        ShapeRequest("ana", instruction, **options), generation=ShapeSettings(**FAST)
    )  # type: ignore[arg-type]


def _files(engine: Engine) -> set[Path]:
    return {p for p in engine.store.artifacts_root.rglob("*") if p.is_file()}


def test_the_subject_becomes_a_mesh_and_views(
    engine: Engine, photos: list[Path], tiny_shap_e: Path
) -> None:
    made = _make(engine)
    meshes = [p for p in made.media if p.suffix == ".ply"]
    views = [p for p in made.media if p.suffix == ".png"]
    assert len(meshes) == 1 and len(views) == 20
    assert all(p.is_relative_to(engine.store.artifacts_root) for p in made.media)
    mesh = read_ply(meshes[0])
    assert len(mesh.vertices) == made.details["vertices"] > 0
    assert len(mesh.faces) == made.details["faces"] > 0
    assert mesh.faces.max() < len(mesh.vertices) and mesh.faces.min() >= 0
    assert np.abs(mesh.vertices).max() <= 1.0  # inside Shap-E's unit box
    assert mesh.colors.shape == (len(mesh.vertices), 3)
    assert Image.open(views[0]).size == (8, 8)
    # Made from the most typical reference, never the odd one out; every score recorded.
    scores = made.details["reference_scores"]
    assert set(scores) == set(map(str, photos))
    assert made.details["reference"] == max(scores, key=scores.get) != str(photos[3])
    assert made.provenance.subjects == ["rex"]
    assert made.provenance.model == str(tiny_shap_e)
    (stored,) = engine.outputs("ana")
    assert stored.modality == "3d" and sorted(stored.media) == sorted(map(str, made.media))
    assert stored.provenance["details"]["reference"] == made.details["reference"]


def test_same_seed_same_asset_and_the_photo_shapes_it(engine: Engine) -> None:
    first, again = _make(engine), _make(engine)
    mesh = next(p for p in first.media if p.suffix == ".ply")
    same = next(p for p in again.media if p.suffix == ".ply")
    assert mesh.read_bytes() == same.read_bytes()
    other = _make(engine, "the mug in 3d")  # another subject: another photo, another mesh
    assert other.details["reference"] != first.details["reference"]
    assert next(p for p in other.media if p.suffix == ".ply").read_bytes() != mesh.read_bytes()


def test_typical_reference_is_the_one_nearest_the_prototype() -> None:
    rows = np.array([[1.0, 0.0], [0.96, 0.28], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    best, scores = typical_reference(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    assert best == 2 and scores[2] == max(scores) and scores[3] < scores[1]


def test_views_are_scored_against_the_references(
    engine: Engine, tiny_clip: Path, reference_images: list[Path]
) -> None:
    made = _make(engine)
    views = [Image.open(p).convert("RGB") for p in made.media if p.suffix == ".png"]
    refs = [Image.open(p).convert("RGB") for p in reference_images]
    scores = asset_metrics(views, "rex as a 3d figure", refs, ClipEncoder(str(tiny_clip)))
    assert scores["views"] == 20
    assert -1 <= scores["clip_i"] <= 1 and -1 <= scores["clip_t"] <= 1
    assert 0 < scores["view_consistency"] <= 1


def test_bad_requests_are_refused_before_anything_is_written(
    engine: Engine, photos: list[Path]
) -> None:
    before = _files(engine)
    cases = [
        (ShapeRequest("ana", "rex", subject="rover"), "has no subject 'rover'"),
        (ShapeRequest("ana", "rex", seed=-1), "seed must be between 0 and"),
        (ShapeRequest("ana", "rex", seed=2**64), "seed must be between 0 and"),
        (ShapeRequest("bob", "rex in 3d"), "names none of user 'bob'"),
        (ShapeRequest("ana", "rex", strategy="nerf"), "nerf"),
    ]
    for request, message in cases:
        with pytest.raises(InvalidRequest, match=message):
            engine.generate(request)
    photos[0].unlink()  # a reference gone since it was ingested
    with pytest.raises(InvalidRequest, match=r"subject 'rex': image .*no such file"):
        engine.generate(ShapeRequest("ana", "rex"))
    assert _files(engine) == before and engine.outputs("ana") == []


def test_no_3d_model_installed_is_said_before_anything_loads(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with Engine.open(Config(home=tmp_path / "other", threads=1)) as engine:
        engine.ingest(
            [Subject(user_id="ana", name="rex", class_word="dog", image_paths=[str(photos[0])])]
        )
        with pytest.raises(
            InvalidRequest, match="no 3D model is installed: 'openai/shap-e-img2img'"
        ):
            engine.generate(ShapeRequest("ana", "rex"))
        assert engine.outputs("ana") == []


def test_delete_user_forgets_the_assets(engine: Engine) -> None:
    made = _make(engine)
    assert all(p.is_file() for p in made.media)
    engine.delete_user("ana")
    assert not any(p.exists() for p in made.media)
    assert not any("ana" in str(p) for p in _files(engine))
    assert [o.output_id for o in engine.outputs("bob")] == []
