"""EfficientNet-Lite0 with its real ImageNet weights; CLIP/DINO-style loading from a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pgen.models.image_embedding import (
    EfficientNetEmbedder,
    TransformersImageEmbedder,
    load_image_embedder,
)
from pgen.models.image_input import open_image
from tests.conftest import shared_data
from tests.multimodal.conftest import blob_image

DOGS = range(151, 269)  # ImageNet classes 151-268 are dog breeds
CATS = range(281, 286)


def test_weights_load_into_the_right_places(efficientnet: EfficientNetEmbedder) -> None:
    bench = shared_data("dreambench")
    images = [open_image(bench / "dog" / "00.jpg"), open_image(bench / "cat" / "00.jpg")]
    top = efficientnet.logits(images).argmax(axis=1)
    assert top[0] in DOGS, top[0]
    assert top[0] == 263  # the DreamBench dog is a corgi: Pembroke Welsh corgi
    assert top[1] in CATS, top[1]


def test_vectors_are_unit_rows_and_tell_subjects_apart(efficientnet: EfficientNetEmbedder) -> None:
    bench = shared_data("dreambench")
    paths = [bench / "dog" / "00.jpg", bench / "dog" / "01.jpg", bench / "teapot" / "00.jpg"]
    vectors = efficientnet.embed([open_image(p) for p in paths])
    assert vectors.shape == (3, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_model_id_is_fingerprinted_and_batches_agree(efficientnet: EfficientNetEmbedder) -> None:
    name, _, fingerprint = efficientnet.model_id.partition("#")
    assert name == "efficientnet-lite0" and len(fingerprint) == 12
    images = [blob_image(i) for i in range(3)]
    together = efficientnet.embed(images)
    alone = np.concatenate([efficientnet.embed([im]) for im in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert efficientnet.embed([]).shape == (0, 1280)


def test_clip_from_a_folder_embeds_images_and_text(tiny_clip: Path) -> None:
    embedder = load_image_embedder(str(tiny_clip))
    assert isinstance(embedder, TransformersImageEmbedder) and embedder.has_text
    images = embedder.embed([blob_image(0), blob_image(1)])
    texts = embedder.embed_text(["a dog", "a photo"])
    assert images.shape == (2, 16) and texts.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert embedder.model_id.startswith(f"{tiny_clip}#")


def test_dino_style_vit_from_a_folder_embeds_with_its_class_token(tiny_dino: Path) -> None:
    embedder = load_image_embedder(str(tiny_dino))
    assert isinstance(embedder, TransformersImageEmbedder) and not embedder.has_text
    vectors = embedder.embed([blob_image(0), blob_image(1), blob_image(0)])
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)
    with pytest.raises(ValueError, match="has no text tower"):
        embedder.embed_text(["a dog"])


def test_an_unknown_embedder_names_itself() -> None:
    with pytest.raises(OSError, match="no-such-embedder"):
        load_image_embedder("no-such-embedder")
