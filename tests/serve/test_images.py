"""Images over HTTP with a tiny random Stable Diffusion pipeline: generated, stored as
the user's artifacts, served back only to the user's tenant, removed with the user."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from pgen.models.text import TransformersTextModel
from pgen.serve.errors import NOT_FOUND_BODY
from tests.serve.conftest import tenant_records
from tests.serve.server import serve_in_thread, service_config


@pytest.fixture(scope="module")
def tiny_sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers")
    from tests.builders.image_models import random_sd_pipeline

    path = tmp_path_factory.mktemp("tiny-sd")
    random_sd_pipeline("tiny").save_pretrained(path)
    return path


def test_generate_an_image_fetch_it_and_forget_it(
    tmp_path: Path, tiny_llama: Path, tiny_sd_folder: Path, serve_model: TransformersTextModel
) -> None:
    config = service_config(tmp_path, tiny_llama, image_model=str(tiny_sd_folder))
    folder = tmp_path / "tenants" / "acme" / "pgen-artifacts"
    with (
        serve_in_thread(config, text_model=serve_model) as server,
        server.client("acme") as acme,
        server.client("globex") as globex,
    ):
        acme.post("/records", json={"records": tenant_records("acme")})
        made = acme.post(
            "/users/alice/images", json={"instruction": "a mountain at dawn", "steps": 2}
        )
        assert made.status_code == 200, made.text
        url = made.json()["images"][0]
        picture = acme.get(url)
        assert picture.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(picture.content)).size == (32, 32)
        assert globex.get(url).json() == NOT_FOUND_BODY  # globex's alice has no such output
        assert acme.get(url.replace("/images/0", "/images/5")).json() == NOT_FOUND_BODY
        assert len(list(folder.rglob("*.png"))) == 1
        assert acme.delete("/users/alice").status_code == 200
        assert acme.get(url).json() == NOT_FOUND_BODY
    assert not list(folder.rglob("*.png"))  # delete-user removed the image files
