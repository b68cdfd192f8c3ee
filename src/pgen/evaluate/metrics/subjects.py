"""Identity mixing of several subjects in one image: each subject's region compared with
every subject's reference images (DINO or CLIP-I). A region that looks more like another
subject's references than its own has taken the other's features (the user's dog with the
mug's colours): the leak rate is the share of such regions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from pgen.evaluate.metrics.image import ImageLike, mean_pairwise_cosine, open_images


def crop(image: Image.Image, box: tuple[float, float]) -> Image.Image:
    """The vertical band ``box`` (fractions of the width) of ``image``."""
    width, height = image.size
    return image.crop((round(box[0] * width), 0, round(box[1] * width), height))


def identity_mixing(
    images: Sequence[ImageLike],
    regions: Sequence[tuple[str, tuple[float, float]]],
    references: Mapping[str, Sequence[ImageLike]],
    encoder: Any,
) -> dict[str, float]:
    """``regions``: (subject, band) of every image. Returns the mean similarity of each
    region to its own subject's references (``own``), to the other subjects' (``other``),
    their gap, and the ``leak_rate``: the share of regions closer to another subject."""
    refs = {name: encoder.images(list(paths)) for name, paths in references.items()}
    own, other, leaks, count = 0.0, 0.0, 0, 0
    for image in open_images(images):
        for subject, box in regions:
            features = encoder.images([crop(image, box)])
            mine = mean_pairwise_cosine(features, refs[subject])
            theirs = max(
                mean_pairwise_cosine(features, refs[name]) for name in refs if name != subject
            )
            own, other, count = own + mine, other + theirs, count + 1
            leaks += theirs > mine
    if count == 0:
        raise ValueError("no regions to compare")
    return {
        "own": own / count,
        "other": other / count,
        "gap": (own - other) / count,
        "leak_rate": leaks / count,
        "regions": float(count),
    }
