"""The post modality on tiny random models: one request, a caption in the user's voice (a text
strategy) and an image (keywords or the user's subject) prompted from that caption (joint) or
from the instruction (independent); one record with both; bad input refused; forgotten."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from pgen.components import PostRequest
from pgen.config import Config
from pgen.context import Subject, User
from pgen.context.records import Document, Interaction, Item
from pgen.engine import Engine
from pgen.errors import InvalidRequest
from pgen.evaluate.metrics.image import ClipEncoder
from pgen.evaluate.metrics.video import post_agreement
from pgen.training.subject_artifacts import SubjectTrainingSettings
from pgen.training.subject_trainer import train_subject

TRAIN = SubjectTrainingSettings(steps=2, learning_rate=1e-2)


@pytest.fixture
def engine(
    tmp_path: Path, tiny_sd: Path, tiny_llama: Path, reference_images: list[Path]
) -> Iterator[Engine]:
    photos = [str(shutil.copy(p, tmp_path / p.name)) for p in reference_images]
    config = Config(
        home=tmp_path / "home",
        text_model=str(tiny_llama),
        image_model=str(tiny_sd),
        max_new_tokens=6,
        threads=1,
    )
    with Engine.open(config) as engine:
        engine.ingest(
            [
                User(user_id="ana", profile={"city": "Bologna"}),
                User(user_id="bob"),
                Document(user_id="ana", doc_id="d1", text="Our hike up the ridge was windy."),
                Document(user_id="ana", doc_id="d2", text="Lemon tart for the team."),
                Item(item_id="i1", title="Alpine poster", text="snowy peaks in blue tones"),
                Interaction(user_id="ana", item_id="i1", rating=5.0),
                Subject(user_id="ana", name="rex", class_word="dog", image_paths=photos),
                Subject(user_id="ana", name="mug", class_word="cup", image_paths=photos[:1]),
            ]
        )
        yield engine


def test_a_joint_post_is_one_record_with_caption_and_image(engine: Engine) -> None:
    post = engine.generate(PostRequest("ana", "my weekend hike", "joint", "rag", "keywords"))
    caption = post.text
    assert caption and post.modality == "post"
    (image,) = post.media
    assert image.suffix == ".png" and image.is_file()
    assert image.is_relative_to(engine.store.artifacts_root)
    # The image was prompted from the caption, which came from the user's documents.
    assert post.details["image_prompt"].startswith(" ".join(caption.split()))
    assert post.details["joint"] and post.details["caption_strategy"] == "rag"
    assert "d1" in post.provenance.documents and post.provenance.items == ["i1"]
    (stored,) = engine.outputs("ana")
    assert stored.modality == "post" and stored.text == caption
    assert (
        stored.media == [str(image)] and stored.provenance["documents"] == post.provenance.documents
    )

    apart = engine.generate(PostRequest("ana", "my weekend hike", "independent", "rag", "keywords"))
    assert apart.details["image_prompt"].startswith("my weekend hike")
    assert not apart.details["joint"] and apart.text == caption  # same caption, greedy


def test_a_post_with_the_users_subject(engine: Engine) -> None:
    folder = train_subject(engine.store, "ana", "rex", engine.image_model, "dreambooth-lora", TRAIN)
    post = engine.generate(PostRequest("ana", "rex at the lake", "joint", "profile", "subject"))
    assert post.provenance.subjects == ["rex"] and str(folder) in post.provenance.artifacts
    assert post.details["image_prompt"].startswith("a sks dog, ")
    assert "ana/rex/dreambooth-lora" in post.provenance.model


def test_caption_image_agreement_is_measured(engine: Engine, tiny_clip: Path) -> None:
    post = engine.generate(PostRequest("ana", "my weekend hike", "joint", "none", "none"))
    with Image.open(post.media[0]) as image:
        score = post_agreement([image.convert("RGB")], [post.text], ClipEncoder(str(tiny_clip)))
    assert -1.0 <= score <= 1.0 and score != 0.0


def test_bad_posts_are_refused_and_write_nothing(engine: Engine) -> None:
    cases = [
        (PostRequest("ana", "x", caption="poetry"), "caption strategy 'poetry'"),
        (PostRequest("ana", "x", image="video"), "image strategy 'video'"),
        (PostRequest("ana", "x", "joint", image="subject", subject="rover"), "no subject 'rover'"),
        (PostRequest("ana", "x", image="subject", subject="mug"), "'mug' of user 'ana' has no"),
        (PostRequest("ana", "x", k=0), "k must be at least 1"),
        (PostRequest("ana", "x", "together"), "unknown post strategy 'together'"),
    ]
    for request, message in cases:
        with pytest.raises(InvalidRequest, match=message):
            engine.generate(request)
    assert engine.outputs("ana") == []
    assert not [p for p in engine.store.artifacts_root.rglob("*.png")]


def test_delete_user_forgets_posts(engine: Engine) -> None:
    mine = engine.generate(PostRequest("ana", "my weekend hike", image="none"))
    theirs = engine.generate(PostRequest("bob", "a day out", caption="none", image="none"))
    engine.delete_user("ana")
    assert not mine.media[0].exists() and not mine.media[0].parent.exists()
    assert theirs.media[0].is_file()
    assert [o.modality for o in engine.outputs("bob")] == ["post"]
