"""The face embedders: dlib's real models on real photos, pinned weights, and an ArcFace
network as TorchScript (a tiny random one built here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pgen.models.face import DLIB_SHA256, DlibFaceEmbedder, dlib_model_file, load_face_embedder
from pgen.models.face_torch import TorchFaceEmbedder
from tests.builders.face_models import save_tiny_arcface

from .conftest import ASTRONAUT, COFFEE, HOPPER, group_photo


def test_dlib_finds_faces_and_tells_people_apart(dlib_faces: DlibFaceEmbedder) -> None:
    astronaut = Image.open(ASTRONAUT)
    faces = dlib_faces.faces(astronaut)
    assert faces, "the astronaut's face is found"
    largest = faces[0]
    left, top, right, bottom = largest.box
    assert 0 <= left < right <= astronaut.width and 0 <= top < bottom <= astronaut.height
    assert largest.vector.shape == (128,)
    assert np.isclose(np.linalg.norm(largest.vector), 1.0, atol=1e-5)
    mirrored = dlib_faces.faces(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT))[0]
    hopper = dlib_faces.faces(Image.open(HOPPER))[0]
    same, other = float(largest.vector @ mirrored.vector), float(largest.vector @ hopper.vector)
    assert same > 0.95 > other, (same, other)
    assert dlib_faces.faces(Image.open(COFFEE)) == []


def test_every_face_of_a_group_photo_with_its_position(dlib_faces: DlibFaceEmbedder) -> None:
    group = group_photo()
    faces = dlib_faces.faces(group)
    assert len(faces) >= 2
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas == sorted(areas, reverse=True), "largest face first"
    alone = dlib_faces.faces(Image.open(HOPPER))[0].vector
    hopper = max(faces, key=lambda f: float(f.vector @ alone))
    assert hopper.position(group.width) == "right"
    assert float(hopper.vector @ alone) > 0.95


def test_a_model_file_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    name = "shape_predictor_5_face_landmarks.dat"
    real = dlib_model_file(name)
    copy = tmp_path / name
    shutil.copyfile(real, copy)
    assert dlib_model_file(name, tmp_path) == copy  # the same bytes pass
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"is not the pinned {DLIB_SHA256[name]}"):
        DlibFaceEmbedder(folder=tmp_path)
    with pytest.raises(ValueError, match="dlib model file not found"):
        dlib_model_file("dlib_face_recognition_resnet_model_v1.dat", tmp_path)


def test_an_arcface_network_as_torchscript_embeds_dlib_aligned_faces(tmp_path: Path) -> None:
    folder = save_tiny_arcface(tmp_path / "arcface")
    embedder = load_face_embedder(str(folder))
    assert isinstance(embedder, TorchFaceEmbedder)
    assert embedder.dim == 8 and embedder.model_id.startswith("torch-face:arcface#")
    faces = embedder.faces(group_photo())
    assert len(faces) >= 2
    vectors = np.stack([f.vector for f in faces])
    assert vectors.shape[1] == 8
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1]), "different crops, different vectors"
    assert embedder.faces(Image.open(COFFEE)) == []
    # Other weights behind the same folder name: another model id (the cache never mixes).
    retrained = save_tiny_arcface(tmp_path / "other" / "arcface", dim=8)
    torch.manual_seed(1)
    net = torch.jit.load(str(retrained / "model.pt"))
    for p in net.parameters():
        p.data.add_(1.0)
    net.save(str(retrained / "model.pt"))
    assert TorchFaceEmbedder(str(retrained)).model_id != embedder.model_id


def test_unknown_face_embedders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not 'dlib', 'dlib-cnn' or a folder"):
        load_face_embedder("no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no model\.pt"):
        load_face_embedder(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="unknown face detector"):
        DlibFaceEmbedder("yolo")
