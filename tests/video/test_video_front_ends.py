"""``pgen generate-video`` / ``generate-post`` / ``eval-videos`` and the HTTP generate route
serve the new modalities unchanged (the route comes from the modality contract)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgen.cli.main import main
from pgen.config import Config
from pgen.context import User
from pgen.engine import Engine
from pgen.models.video import read_frames
from tests.serve.server import serve_in_thread, service_config


def test_pgen_generate_video_then_eval_videos(
    tmp_path: Path,
    tiny_sd: Path,
    tiny_motion: Path,
    tiny_clip: Path,
    tiny_dino: Path,
    reference_images: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = ["--home", str(tmp_path / "home")]
    with Engine.open(Config(home=tmp_path / "home")) as engine:
        engine.ingest([User(user_id="ana")])
    argv = ["generate-video", "a dog on a beach", "--user", "ana", "--strategy", "none"]
    model = ["--image-model", str(tiny_sd), "--steps", "2", "--motion-adapter", str(tiny_motion)]
    assert main([*argv, *model, "--frames", "3", "--fps", "6", "--json", *home]) == 0
    record = json.loads(capsys.readouterr().out)
    (clip,) = map(Path, record["media"])
    assert len(read_frames(clip)) == 3 and record["fps"] == 6
    assert record["provenance"]["artifacts"] == [str(tiny_motion)]

    assert main([*argv, *model, "--frames", "40", *home]) == 1
    assert "frames must be between 1 and 32" in capsys.readouterr().err
    assert main([*argv, "--strategy", "subject", *model, *home]) == 1
    assert "names none of user 'ana'" in capsys.readouterr().err

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a dog on a beach\n")
    refs = tmp_path / "refs"
    refs.mkdir()
    for path in reference_images:
        (refs / path.name).write_bytes(path.read_bytes())
    evaluate = ["eval-videos", "--clips", str(clip.parent), "--references", str(refs)]
    models = ["--clip-model", str(tiny_clip), "--dino-model", str(tiny_dino)]
    assert main([*evaluate, *models, "--prompts", str(prompts), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["clips"] == 1 and metrics["frames"] == 3
    for name in ("clip_i", "dino_i", "clip_t", "temporal"):
        assert -1.0 <= metrics[name] <= 1.0, name
    assert metrics["temporal"] > metrics["clip_i"]  # consecutive frames resemble each other


def test_the_http_generate_route_makes_a_clip(
    tmp_path: Path, tiny_llama: Path, tiny_sd: Path, tiny_motion: Path
) -> None:
    config = service_config(
        tmp_path / "serve",
        tiny_llama,
        image_model=str(tiny_sd),
        video_motion_adapters=(str(tiny_motion),),  # the service loads only pinned ones
    )
    with serve_in_thread(config, tenants=("acme",)) as running, running.client("acme") as client:
        records = [{"type": "user", "user_id": "ana"}]
        assert client.post("/records", json={"records": records}).status_code == 200
        options = {"frames": 2, "fps": 4, "motion_adapter": str(tiny_motion)}
        body = {
            "instruction": "a beach",
            "modality": "video",
            "strategy": "none",
            "options": options,
        }
        answer = client.post("/users/ana/generate", json=body)
        assert answer.status_code == 200, answer.text
        made = answer.json()
        assert made["modality"] == "video" and made["media"] == 1
        assert made["details"]["frames"] == 2
        listed = client.get("/users/ana/outputs").json()
        assert [o["modality"] for o in listed] == ["video"]
        too_long = {**body, "options": {**options, "frames": 99}}
        wrong = client.post("/users/ana/generate", json=too_long)
        assert (
            wrong.status_code == 422
            and "frames must be between" in wrong.json()["error"]["message"]
        )
        assert len(client.get("/users/ana/outputs").json()) == 1
