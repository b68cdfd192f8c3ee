"""The faces on the command line: ``pgen search-photos --user U NAME`` over the user's
photos, ``pgen eval-images --face-model dlib``, and a bad face subject as one line."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.context.records import Document, Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.evaluate.metrics.face import face_similarity
from pgen.models.face import DlibFaceEmbedder


def _base(tmp_path: Path) -> list[str]:
    return ["--store", str(tmp_path / "pgen.sqlite"), "--home", str(tmp_path), "--threads", "1"]


def test_search_photos_by_a_persons_name(
    tmp_path: Path, photos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    refs = [str(photos["grace_1"]), str(photos["grace_2"])]
    store.add(
        [
            User(user_id="u1"),
            Subject(user_id="u1", name="Grace", class_word="person", image_paths=refs),
            *[
                Document(
                    user_id="u1", doc_id=d, kind="photo", text="", fields={"image_path": str(p)}
                )
                for d, p in photos.items()
                if d in ("anna_photo", "grace_photo", "group", "coffee")
            ],
        ]
    )
    store.close()
    media = str(photos["group"].parent)
    search = [*_base(tmp_path), "search-photos", "--user", "u1", "--allow", media]
    assert main([*search, "Grace", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert sorted(h["doc_id"] for h in hits) == ["grace_photo", "group"]
    assert main([*search, "Grace"]) == 0
    assert "grace_photo" in capsys.readouterr().out


def test_a_face_subject_without_a_face_is_one_line(
    tmp_path: Path, photos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    refs = [str(photos["coffee"])]
    store.add(
        [
            User(user_id="u1"),
            Subject(user_id="u1", name="Al", class_word="person", image_paths=refs),
        ]
    )
    store.close()
    search = [*_base(tmp_path), "search-photos", "--user", "u1"]
    assert main([*search, "--allow", str(photos["coffee"].parent), "Al"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "subject 'Al' of user 'u1'" in err and "shows no face" in err


def test_face_similarity_of_generated_images(
    tmp_path: Path,
    photos: dict[str, Path],
    dlib_faces: DlibFaceEmbedder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real, same, other = tmp_path / "real", tmp_path / "same", tmp_path / "other"
    for folder, names in (
        (real, ["grace_1", "grace_2"]),
        (same, ["grace_photo", "coffee", "group"]),
        (other, ["anna_photo", "anna_2"]),
    ):
        folder.mkdir()
        for name in names:
            shutil.copyfile(photos[name], folder / f"{name}.png")
    good = face_similarity(sorted(real.iterdir()), sorted(same.iterdir()), dlib_faces)
    bad = face_similarity(sorted(real.iterdir()), sorted(other.iterdir()), dlib_faces)
    assert math.isclose(good["face_detected"], 2 / 3) and bad["face_detected"] == 1.0
    assert good["face_sim"] > 0.9 > bad["face_sim"], (good, bad)
    none = face_similarity(sorted(real.iterdir()), [photos["coffee"]], dlib_faces)
    assert none["face_detected"] == 0.0 and math.isnan(none["face_sim"])
    with pytest.raises(ValueError, match="no face in any reference image"):
        face_similarity([photos["coffee"]], [photos["grace_1"]], dlib_faces)
    args = ["eval-images", "--real", str(real), "--generated", str(same)]
    args += ["--clip-model", "none", "--dino-model", "none", "--face-model", "dlib", "--json"]
    assert main([*_base(tmp_path), *args]) == 0
    result = json.loads(capsys.readouterr().out)
    assert math.isclose(result["face_sim"], good["face_sim"], rel_tol=1e-6)
    assert math.isclose(result["face_detected"], 2 / 3)
