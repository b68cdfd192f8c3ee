"""The ``face-id`` strategy on tiny random components: a tiny SD pipeline, a tiny random
IP-Adapter-FaceID weight file in h94's layout and a tiny random ArcFace-shaped network (on
dlib's detections in real, public-domain photos: tests/faces/conftest.py). What is checked:
the identity reaches the UNet (another person, another image; scale 0, no change), the
adapter is gone after the request, and every refusal is one line that writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from pgen.context import Subject, User
from pgen.context.sqlite import SQLiteStore
from pgen.engine import Engine
from pgen.models.face_id import faceid_identity_dim
from pgen.models.face_torch import TorchFaceEmbedder
from pgen.models.image import DiffusersImageModel, ImageGenerationSettings, load_image_model
from pgen.personalize import ImageRequest
from pgen.personalize.face_id import FaceIDSpec, subject_identity
from tests.builders.face_models import save_tiny_arcface
from tests.builders.image_models import save_random_faceid_adapter
from tests.faces.conftest import ASTRONAUT, COFFEE, HOPPER

FAST = ImageGenerationSettings(steps=2, guidance_scale=2.0)
DIM = 8  # the tiny adapter's identity size (h94's: 512)


@pytest.fixture(scope="module")
def model(tiny_sd: Path) -> DiffusersImageModel:
    return load_image_model(str(tiny_sd), dtype="float32")


@pytest.fixture(scope="module")
def faceid(tmp_path_factory: pytest.TempPathFactory, model: DiffusersImageModel) -> Path:
    folder = tmp_path_factory.mktemp("faceid")
    return save_random_faceid_adapter(model.pipe.unet, folder / "ip-adapter-faceid_sd15.bin")


@pytest.fixture(scope="module")
def arcface(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_arcface(tmp_path_factory.mktemp("arcface") / "net", dim=DIM)


@pytest.fixture
def engine(tmp_path: Path, model: DiffusersImageModel) -> Engine:
    media = tmp_path / "media"
    media.mkdir()
    astronaut, hopper = Image.open(ASTRONAUT).convert("RGB"), Image.open(HOPPER).convert("RGB")
    photos = {
        "anna_1": astronaut,
        "anna_2": ImageOps.mirror(astronaut).resize((400, 400)),
        "grace": hopper,
        "coffee": Image.open(COFFEE).convert("RGB"),
    }
    paths = {}
    for name, image in photos.items():
        paths[name] = str(media / f"{name}.png")
        image.save(paths[name])
    store = SQLiteStore(tmp_path / "pgen.sqlite")
    store.add(
        [
            User(user_id="ana"),
            Subject(
                user_id="ana",
                name="anna",
                class_word="person",
                image_paths=[paths["anna_1"], paths["anna_2"]],
            ),
            Subject(user_id="ana", name="grace", class_word="person", image_paths=[paths["grace"]]),
            Subject(
                user_id="ana", name="blank", class_word="person", image_paths=[paths["coffee"]]
            ),
            Subject(user_id="ana", name="cup", class_word="mug", image_paths=[paths["coffee"]]),
            User(user_id="bob"),
            Subject(user_id="bob", name="bert", class_word="person", image_paths=[paths["grace"]]),
        ]
    )

    def components(role: str) -> object:
        if role != "face_embedder":
            pytest.fail(f"no {role} here")
        from pgen.models.face import DlibFaceEmbedder

        return DlibFaceEmbedder()

    return Engine(
        store,
        lambda: pytest.fail("no text model"),
        lambda: pytest.fail("no embedder"),
        image_model=model,
        components=components,
    )


def _pixels(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.float32) for image in images])


def test_generate_image_face_id_from_the_cli(
    engine: Engine,
    tmp_path: Path,
    tiny_sd: Path,
    faceid: Path,
    arcface: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pgen.cli.main import main

    home = tmp_path  # the engine fixture's store: its users and subjects
    argv = ["--store", str(home / "pgen.sqlite"), "--home", str(home), "generate-image"]
    argv += ["--user", "ana", "--strategy", "face-id", "--image-model", str(tiny_sd)]
    argv += ["--steps", "2", "--ip-adapter", str(faceid), "--ip-adapter-scale", "1.0"]
    assert main([*argv, "--face-model", str(arcface), "--json", "anna at the beach"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["method"] == "face-id" and record["artifacts"] == [str(faceid)]
    assert record["subjects"] == ["anna"] and record["prompt"] == "person at the beach"
    # Without --face-model the identity comes from dlib: 128-d, refused in one line.
    assert main([*argv, "anna at the beach"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the pipeline's load bars
    assert err.startswith("pgen: error: face-id: the identity embedder dlib-resnet-v1")
    assert "gives 128-d vectors" in err and f"take {DIM}-d" in err


def _request(name: str, spec: FaceIDSpec, user: str = "ana") -> ImageRequest:
    return ImageRequest(user, f"{name} on a beach", "face-id", ip_adapter=spec)


def test_the_face_identity_reaches_the_unet(engine: Engine, faceid: Path, arcface: Path) -> None:
    model = engine.image_model
    spec = FaceIDSpec.for_model(model, str(faceid), scale=1.0, face_model=str(arcface))
    assert (spec.repo, spec.weight_name) == (str(faceid.parent), faceid.name)
    plain = _pixels(model.generate(["person on a beach"], FAST))

    anna = engine.generate_image(_request("anna", spec), FAST)
    assert anna.prompt == "person on a beach"
    assert anna.provenance.subjects == ["anna"] and anna.provenance.artifacts == [str(faceid)]
    assert anna.details["method"] == "face-id"
    assert anna.details["face_model"].startswith("torch-face:net#")
    anna_pixels = _pixels([Image.open(p) for p in anna.paths])
    assert np.abs(anna_pixels - plain).mean() > 1.0, "the identity changes the image"

    grace = engine.generate_image(_request("grace", spec), FAST)
    grace_pixels = _pixels([Image.open(p) for p in grace.paths])
    assert np.abs(grace_pixels - anna_pixels).mean() > 1.0, "another face, another image"

    # Scale 0: the adapter's attention adds nothing, so the image is the plain one.
    off = FaceIDSpec(spec.repo, "", spec.weight_name, 0.0, spec.face_model)
    zero = engine.generate_image(_request("anna", off), FAST)
    np.testing.assert_allclose(_pixels([Image.open(p) for p in zero.paths]), plain, atol=1)
    # Nothing of the adapter is left in the pipeline for the next request.
    np.testing.assert_allclose(_pixels(model.generate(["person on a beach"], FAST)), plain, atol=1)
    assert model.pipe.unet.encoder_hid_proj is None


def test_the_identity_is_the_normalized_mean_of_the_references(
    engine: Engine, arcface: Path
) -> None:
    embedder = TorchFaceEmbedder(str(arcface))
    [anna] = [s for s in engine.store.subjects("ana") if s.name == "anna"]
    identity = subject_identity(engine.store, "ana", anna, embedder)
    vectors = [embedder.faces(Image.open(p))[0].vector for p in anna.image_paths]
    expected = np.mean(vectors, axis=0)
    np.testing.assert_allclose(identity, expected / np.linalg.norm(expected), atol=1e-5)
    assert identity.shape == (DIM,)


def test_a_faceid_lora_is_unloaded_with_the_adapter(
    engine: Engine, tmp_path: Path, arcface: Path
) -> None:
    model = engine.image_model
    weights = save_random_faceid_adapter(
        model.pipe.unet, tmp_path / "lora" / "ip-adapter-faceid_sd15.bin", lora_rank=2
    )
    spec = FaceIDSpec.for_model(model, str(weights), scale=0.0, face_model=str(arcface))
    plain = _pixels(model.generate(["person on a beach"], FAST))
    out = engine.generate_image(_request("anna", spec), FAST)
    # Scale 0 silences the identity, not the LoRA h94's SD 1.5 weights carry.
    assert np.abs(_pixels([Image.open(p) for p in out.paths]) - plain).mean() > 1.0
    assert "faceid_0" not in getattr(model.pipe.unet, "peft_config", {})
    np.testing.assert_allclose(_pixels(model.generate(["person on a beach"], FAST)), plain, atol=1)


def _refusal(engine: Engine, request: ImageRequest) -> str:
    with pytest.raises(ValueError) as caught:
        engine.generate_image(request, FAST)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_refusals_are_one_line_and_write_nothing(
    engine: Engine, faceid: Path, arcface: Path, tmp_path: Path
) -> None:
    model = engine.image_model
    spec = FaceIDSpec.for_model(model, str(faceid), face_model=str(arcface))
    # dlib (the engine's face embedder) gives 128-d vectors; the adapter takes 8-d ones.
    dlib = FaceIDSpec.for_model(model, str(faceid))
    message = _refusal(engine, _request("anna", dlib))
    assert "128-d" in message and f"{DIM}-d" in message and "dlib-resnet-v1" in message
    message = _refusal(engine, _request("anna", replace_weights(spec, tmp_path / "none")))
    assert "no such file" in message
    message = _refusal(engine, _request("blank", spec))
    assert "shows no face" in message and "coffee.png" in message
    assert "a 'mug', not a 'person'" in _refusal(engine, _request("cup", spec))
    # Another user's person cannot be named, by subject or in the instruction.
    named = ImageRequest("ana", "a portrait", "face-id", subject="bert", ip_adapter=spec)
    assert "user 'ana' has no subject 'bert'" in _refusal(engine, named)
    assert "names none of user 'ana'" in _refusal(engine, _request("bert", spec))
    assert engine.store.outputs("ana") == []


def replace_weights(spec: FaceIDSpec, folder: Path) -> FaceIDSpec:
    return FaceIDSpec(str(folder), "", spec.weight_name, spec.scale, spec.face_model)


def test_the_identity_size_is_read_from_either_weight_format(faceid: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    assert faceid_identity_dim(faceid) == DIM
    state = torch.load(faceid, weights_only=True)
    flat = {f"{group}.{key}": value for group, part in state.items() for key, value in part.items()}
    save_file(flat, str(tmp_path / "faceid.safetensors"))
    assert faceid_identity_dim(tmp_path / "faceid.safetensors") == DIM
    # A plain IP-Adapter (CLIP image features) is not FaceID.
    del state["image_proj"]["norm.weight"]
    torch.save(state, tmp_path / "plain.bin")
    with pytest.raises(ValueError, match="not an IP-Adapter-FaceID file"):
        faceid_identity_dim(tmp_path / "plain.bin")


def test_sdxl_takes_its_own_faceid_weights(tiny_sdxl: Path, tmp_path: Path) -> None:
    from pgen.models.base import AdapterRef

    model = load_image_model(str(tiny_sdxl), dtype="float32")
    assert FaceIDSpec.for_model(model).weight_name == "ip-adapter-faceid_sdxl.bin"
    weights = save_random_faceid_adapter(model.pipe.unet, tmp_path / "ip-adapter-faceid_sdxl.bin")
    plain = _pixels(model.generate(["a person"], FAST))
    identity = np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)
    settings = {"weights": str(weights), "scale": 1.0, "identity": identity}
    drawn = model.render("a person", FAST, AdapterRef("face-id", "x", None, settings))
    assert np.abs(_pixels(drawn) - plain).mean() > 1.0
    np.testing.assert_allclose(_pixels(model.generate(["a person"], FAST)), plain, atol=1)
    # A vector of another size than the loaded projection's is refused, and unloaded.
    wrong = {**settings, "identity": np.ones(DIM + 1, dtype=np.float32)}
    with pytest.raises(ValueError, match=rf"take {DIM}-d identities, given {DIM + 1}-d"):
        model.render("a person", FAST, AdapterRef("face-id", "x", None, wrong))
    assert model.pipe.unet.encoder_hid_proj is None
