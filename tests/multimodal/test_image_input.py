"""Images named in requests: checked, with one line naming the file, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pgen.models.image_input import ImageInputError, check_image_path, open_image
from tests.multimodal.conftest import blob_image


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    blob_image(0).save(folder / "good.jpg")
    (folder / "notes.jpg").write_text("this is not a picture")
    data = (folder / "good.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    Image.new("L", (9000, 9000)).save(folder / "huge.png")  # 81 M pixels, a small file
    (folder / "album").mkdir()
    return folder


def test_a_good_image_opens_as_rgb(photos: Path) -> None:
    image = open_image(photos / "good.jpg", [photos])
    assert image.mode == "RGB" and image.size == (64, 48)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("notes.jpg", "not an image"),
        ("cut.jpg", "cannot be decoded"),
        ("huge.png", "over 40,000,000 pixels"),
        ("album", "not a regular file"),
        ("missing.jpg", "no such file"),
    ],
)
def test_bad_images_name_the_file(photos: Path, name: str, why: str) -> None:
    with pytest.raises(ImageInputError, match=why) as caught:
        open_image(photos / name, [photos])
    message = str(caught.value)
    assert name in message and "\n" not in message


def test_paths_outside_the_allowed_folders_are_refused(photos: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.jpg"
    blob_image(1).save(outside)
    with pytest.raises(ImageInputError, match="outside the allowed folders"):
        open_image(outside, [photos])
    with pytest.raises(ImageInputError, match="outside the allowed folders"):
        open_image(photos / ".." / "elsewhere.jpg", [photos])
    (photos / "link.jpg").symlink_to(outside)  # a link inside pointing outside
    with pytest.raises(ImageInputError, match="outside the allowed folders"):
        check_image_path(photos / "link.jpg", [photos])
    assert open_image(outside).size == (64, 48)  # no folders given: anywhere
