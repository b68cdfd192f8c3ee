"""Vision-language backends: a tiny random LLaVA through transformers' Auto classes, and
the OpenAI-compatible backend with image parts against a local server."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from pgen.models.base import GenerationSettings
from pgen.models.http import TextModelError
from pgen.models.vision import (
    OpenAIVisionModel,
    TransformersVisionModel,
    VisionLanguageModel,
    VisionMessage,
    load_vision_model,
)
from tests.multimodal.conftest import RecordingServer, blob_image

SHORT = GenerationSettings(max_new_tokens=6)


@pytest.fixture(scope="module")
def llava(tiny_vlm: Path) -> TransformersVisionModel:
    model = load_vision_model(str(tiny_vlm))
    assert isinstance(model, TransformersVisionModel)
    return model


@pytest.fixture(scope="module", params=["llava", "idefics3"])
def family(request: pytest.FixtureRequest) -> TransformersVisionModel:
    folder = request.getfixturevalue("tiny_vlm" if request.param == "llava" else "tiny_idefics3")
    model = load_vision_model(str(folder))
    assert isinstance(model, TransformersVisionModel)
    return model


def test_tiny_vlms_load_from_a_folder_and_answer_about_images(
    family: TransformersVisionModel,
) -> None:
    llava = family
    assert isinstance(llava, VisionLanguageModel)
    chats = [
        [VisionMessage("user", "what is this?", (blob_image(0),))],
        [
            VisionMessage("system", "You know the user's dog Rex."),
            VisionMessage(
                "user", "Image 1 is Rex. Is Rex in image 2?", (blob_image(1), blob_image(2))
            ),
        ],
        [VisionMessage("user", "no image at all")],
    ]
    batch = llava.generate(chats, SHORT)
    assert len(batch) == 3 and all(isinstance(text, str) for text in batch)
    # Greedy and left-padded: a chat's reply does not depend on its batch neighbours.
    assert [llava.generate([chat], SHORT)[0] for chat in chats] == batch
    assert llava.generate(chats[:1], SHORT) == batch[:1]


def test_soft_tokens_work_on_each_family(family: TransformersVisionModel) -> None:

    chat = [
        VisionMessage("system", f"<Rex> is {family.placeholder * 2}."),
        VisionMessage("user", "Is <Rex> here?", (blob_image(0),)),
    ]
    weight = family.model.get_input_embeddings().weight
    pad = weight[family.processor.tokenizer.pad_token_id].detach()
    assert family.generate([chat], SHORT, soft_tokens=[pad.repeat(2, 1)]) == family.generate(
        [chat], SHORT
    )


def test_the_image_changes_what_the_model_sees(llava: TransformersVisionModel) -> None:
    inputs = [
        llava.processor.apply_chat_template(
            [
                [
                    {
                        "role": "user",
                        "content": [{"type": "image", "image": im}, {"type": "text", "text": "hi"}],
                    }
                ]
            ],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        for im in (blob_image(0), blob_image(5))
    ]
    image_token = llava.model.config.image_token_index
    assert int((inputs[0]["input_ids"] == image_token).sum()) == 16  # (32 / 8) ** 2 patches
    assert not inputs[0]["pixel_values"].equal(inputs[1]["pixel_values"])


def _decoded(url: str) -> Image.Image:
    header, _, data = url.partition(",")
    assert header == "data:image/jpeg;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_http_backend_sends_image_parts(vlm_server: RecordingServer) -> None:
    model = load_vision_model(f"openai:tiny-vlm@{vlm_server.url}")
    assert isinstance(model, OpenAIVisionModel)
    big = Image.new("RGB", (3000, 1500), "red")
    chats = [
        [
            VisionMessage("system", "be brief"),
            VisionMessage("user", "Is Rex here?", (blob_image(0), big)),
        ],
        [VisionMessage("user", "just text")],
    ]
    replies = model.generate(chats, SHORT)
    assert replies == ["2 images; Is Rex here?", "0 images;"]  # replies are stripped
    first = next(r for r in vlm_server.requests if r["messages"][0]["role"] == "system")
    assert first["model"] == "tiny-vlm" and first["max_tokens"] == 6 and first["temperature"] == 0.0
    system, user = first["messages"]
    assert system == {"role": "system", "content": "be brief"}
    kinds = [part["type"] for part in user["content"]]
    assert kinds == ["image_url", "image_url", "text"]  # images before the text
    small, shrunk = (_decoded(p["image_url"]["url"]) for p in user["content"][:2])
    assert small.size == (64, 48) and shrunk.size == (1024, 512)


def test_http_backend_errors_name_the_server(vlm_server: RecordingServer) -> None:
    vlm_server.status = 500
    model = OpenAIVisionModel(vlm_server.url, "tiny-vlm")
    with pytest.raises(TextModelError, match="answered 500"):
        model.generate([[VisionMessage("user", "hi", (blob_image(0),))]])


def test_bad_specs_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match="openai:MODEL@BASE_URL"):
        load_vision_model("openai:nourl")
    with pytest.raises(OSError, match="vision model 'no/such-vlm'"):
        load_vision_model("no/such-vlm")
