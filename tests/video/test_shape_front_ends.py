"""The ``3d`` modality through the front ends, with no code of its own there: ``pgen generate
--modality 3d`` then ``pgen eval-3d``, and the HTTP generate route with an uploaded
reference (the routes come from the modality contract)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.config import Config
from pgen.context import Subject, User
from pgen.engine import Engine
from pgen.models.shape import read_ply
from tests.builders.shape_models import save_random_shap_e
from tests.serve.server import serve_in_thread, service_config

FAST = {"steps": 2, "grid_size": 16, "view_size": 8, "coarse_samples": 8, "fine_samples": 8}


@pytest.fixture(scope="module")
def shape_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The config table of a tiny random Shap-E with quick settings."""
    folder = save_random_shap_e(tmp_path_factory.mktemp("tiny-shap-e"))
    return {"provider": "shap-e", "settings": {"path": str(folder), **FAST}}


def test_pgen_generate_3d_then_eval_3d(
    tmp_path: Path,
    shape_model: dict[str, object],
    tiny_clip: Path,
    reference_images: list[Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = shape_model["settings"]
    assert isinstance(settings, dict)
    table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    toml = tmp_path / "pgen.toml"
    toml.write_text(f'[shape_model]\nprovider = "shap-e"\nsettings = {{ {table} }}\n')
    monkeypatch.setenv("PGEN_CONFIG", str(toml))
    monkeypatch.setenv("PGEN_MEDIA_ROOT", str(reference_images[0].parent))
    home = ["--home", str(tmp_path / "home")]
    with Engine.open(Config(home=tmp_path / "home")) as engine:
        refs = list(map(str, reference_images))
        engine.ingest(
            [
                User(user_id="ana"),
                Subject(user_id="ana", name="rex", class_word="dog", image_paths=refs),
            ]
        )
    argv = ["generate", "rex as a figurine", "--user", "ana", "--modality", "3d", "--json"]
    assert main([*argv, *home]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["modality"] == "3d" and record["provenance"]["subjects"] == ["rex"]
    (mesh,) = [Path(p) for p in record["media"] if p.endswith(".ply")]
    assert len(read_ply(mesh).vertices) == record["details"]["vertices"]
    assert main([*argv, "--option", "seed=-2", *home]) == 1
    assert "seed must be between 0 and" in capsys.readouterr().err

    evaluate = ["eval-3d", "--user", "ana", "--output", record["output_id"], "--json"]
    models = ["--clip-model", str(tiny_clip), "--dino-model", "none"]
    assert main([*evaluate, *models, *home]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["views"] == 20 and set(metrics) >= {"clip_i", "clip_t", "view_consistency"}
    assert main(["eval-3d", "--user", "ana", "--output", "nope", *models, *home]) == 1
    assert "user 'ana' has no 3d output 'nope'" in capsys.readouterr().err


def test_the_http_generate_route_makes_an_asset(
    tmp_path: Path, tiny_llama: Path, shape_model: dict[str, object], reference_images: list[Path]
) -> None:
    config = service_config(tmp_path / "serve", tiny_llama, shape_model=shape_model)
    with serve_in_thread(config, tenants=("acme", "globex")) as running:
        with running.client("acme") as client:
            user = client.post("/records", json={"records": [{"type": "user", "user_id": "ana"}]})
            assert user.status_code == 200, user.text
            refs = []
            for path in reference_images:
                sent = client.post(
                    "/users/ana/uploads", files={"file": (path.name, path.read_bytes())}
                )
                assert sent.status_code == 200, sent.text
                refs.append(sent.json()["ref"])
            subject = {"type": "subject", "user_id": "ana", "name": "rex", "class_word": "dog"}
            added = client.post("/records", json={"records": [{**subject, "image_paths": refs}]})
            assert added.status_code == 200, added.text
            body = {"instruction": "rex in 3d", "modality": "3d", "options": {"seed": 3}}
            answer = client.post("/users/ana/generate", json=body)
            assert answer.status_code == 200, answer.text
            made = answer.json()
            assert made["modality"] == "3d" and made["media"] == 21  # the mesh and 20 views
            assert made["details"]["seed"] == 3 and made["details"]["faces"] > 0
            wrong = client.post(
                "/users/ana/generate", json={**body, "options": {"subject": "rover"}}
            )
            assert wrong.status_code == 422 and "rover" in wrong.json()["error"]["message"]
            assert len(client.get("/users/ana/outputs").json()) == 1
        with running.client("globex") as other:  # another tenant's ana has no rex
            answer = other.post("/users/ana/generate", json=body)
            assert answer.status_code in (404, 422), answer.text
