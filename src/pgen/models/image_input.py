"""Opening images a user names: checked before any model or store sees them.

A path from a request must exist, be a regular file, lie inside one of the folders the
operator allows (after resolving links, so ``..`` and symlinks cannot reach elsewhere),
and decode completely as an image of bounded size. Every failure is an ``ImageInputError``
with one line naming the file.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from pgen.errors import InvalidRequest

MAX_PIXELS = 40_000_000  # about 7,000 x 5,700: larger is a decompression bomb, not a photo
MAX_BYTES = 64 << 20


class ImageInputError(InvalidRequest):
    pass


def check_image_path(
    path: str | Path, allowed: Sequence[Path] | None = None, denied: Sequence[Path] = ()
) -> Path:
    """The resolved path if it is a regular file inside ``allowed`` (None: anywhere) and
    outside ``denied`` (the store's own files: other users' artifacts live there)."""
    given = Path(path).expanduser()
    try:
        resolved = given.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ImageInputError(f"image {str(given)!r}: no such file") from None
    if not resolved.is_file():
        raise ImageInputError(f"image {str(given)!r}: not a regular file")
    if allowed is not None and not any(
        resolved.is_relative_to(root.expanduser().resolve()) for root in allowed
    ):
        roots = ", ".join(str(root) for root in allowed) or "none configured"
        raise ImageInputError(f"image {str(given)!r}: outside the allowed folders ({roots})")
    if any(resolved.is_relative_to(root.expanduser().resolve()) for root in denied):
        raise ImageInputError(f"image {str(given)!r}: points into the store's own files")
    if resolved.stat().st_size > MAX_BYTES:
        raise ImageInputError(f"image {str(given)!r}: larger than {MAX_BYTES >> 20} MiB")
    return resolved


def open_image(
    path: str | Path,
    allowed: Sequence[Path] | None = None,
    max_pixels: int = MAX_PIXELS,
    denied: Sequence[Path] = (),
) -> Image.Image:
    """The image as RGB, fully decoded (a truncated file fails here, not inside a model)."""
    resolved = check_image_path(path, allowed, denied)
    try:
        with Image.open(resolved) as image:
            width, height = image.size  # read from the header, before decoding any pixel
            if width * height > max_pixels:
                raise ImageInputError(
                    f"image {str(path)!r}: {width}x{height} is over {max_pixels:,} pixels"
                )
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.load()
            return image.convert("RGB")
    except ImageInputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError(f"image {str(path)!r}: not an image PIL can read") from None
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        raise ImageInputError(f"image {str(path)!r}: cannot be decoded ({error})") from None


def file_hash(path: str | Path) -> str:
    """The content hash image embeddings are stored under: the same photo copied or renamed
    is embedded once; an edited photo under the same name is embedded again."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


def load_reference_images(paths: Sequence[str | Path]) -> list[Image.Image]:
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(ImageOps.exif_transpose(image).convert("RGB"))
        except (OSError, ValueError) as error:
            raise ValueError(f"reference image {path}: cannot be read ({error})") from None
    return images
