"""A service loads only the motion adapters its config names (``video_motion_adapters``):
a client naming any other one, a server path included, gets a 422 and nothing is loaded.
Through the real HTTP generate route, with tiny random models."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import pgen.models.video as video_models
from pgen.config import load_config
from tests.serve.server import serve_in_thread, service_config


def _loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every motion adapter the process loads, in order (pgen's own loader, wrapped)."""
    seen: list[str] = []
    real = video_models.load_motion_adapter

    def spy(spec: str, dtype: Any) -> Any:
        seen.append(spec)
        return real(spec, dtype)

    monkeypatch.setattr(video_models, "load_motion_adapter", spy)
    return seen


def _clip(motion: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"frames": 2, "fps": 4}
    if motion is not None:
        options["motion_adapter"] = motion
    return {"instruction": "a beach", "modality": "video", "strategy": "none", "options": options}


def test_the_service_loads_only_its_configured_motion_adapters(
    tmp_path: Path,
    tiny_llama: Path,
    tiny_sd: Path,
    tiny_motion: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A loadable adapter at another server path: refused by name, though it would load.
    elsewhere = tmp_path / "elsewhere-motion"
    shutil.copytree(tiny_motion, elsewhere)
    loads = _loads(monkeypatch)
    pinned = (str(tiny_motion),)
    config = service_config(
        tmp_path / "serve", tiny_llama, image_model=str(tiny_sd), video_motion_adapters=pinned
    )
    with serve_in_thread(config, tenants=("acme",)) as running, running.client("acme") as client:
        records = [{"type": "user", "user_id": "ana"}]
        assert client.post("/records", json={"records": records}).status_code == 200
        for named in (str(elsewhere), "/etc", "some-org/some-motion-adapter"):
            refused = client.post("/users/ana/generate", json=_clip(named))
            assert refused.status_code == 422, refused.text
            message = refused.json()["error"]["message"]
            assert message.startswith(f"motion adapter {named!r} is not one this service offers")
            assert "\n" not in message
        assert loads == [] and client.get("/users/ana/outputs").json() == []

        # Naming none gets the first configured one; naming it explicitly is accepted.
        for named in (None, str(tiny_motion)):
            made = client.post("/users/ana/generate", json=_clip(named))
            assert made.status_code == 200, made.text
            assert made.json()["provenance"]["artifacts"] == [str(tiny_motion)]
    assert set(loads) == {str(tiny_motion)}  # built once per image model, then reused


def test_a_service_with_no_list_takes_no_adapter_from_requests(
    tmp_path: Path,
    tiny_llama: Path,
    tiny_sd: Path,
    tiny_motion: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads = _loads(monkeypatch)
    config = service_config(tmp_path / "serve", tiny_llama, image_model=str(tiny_sd))
    with serve_in_thread(config, tenants=("acme",)) as running, running.client("acme") as client:
        records = [{"type": "user", "user_id": "ana"}]
        assert client.post("/records", json={"records": records}).status_code == 200
        refused = client.post("/users/ana/generate", json=_clip(str(tiny_motion)))
        assert refused.status_code == 422, refused.text
        assert "video_motion_adapters names none" in refused.json()["error"]["message"]
    assert loads == []


def test_the_allow_list_is_read_from_toml_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "pgen.toml"
    toml.write_text('video_motion_adapters = ["/models/mm-v2", "org/motion"]\n')
    assert load_config(toml).video_motion_adapters == ("/models/mm-v2", "org/motion")
    monkeypatch.setenv("PGEN_VIDEO_MOTION_ADAPTERS", "org/a, /models/b")
    assert load_config(toml).video_motion_adapters == ("org/a", "/models/b")
    monkeypatch.setenv("PGEN_VIDEO_MOTION_ADAPTERS", "org/a,,/models/b")
    with pytest.raises(ValueError, match="video_motion_adapters has an empty entry"):
        load_config(toml)
    monkeypatch.delenv("PGEN_VIDEO_MOTION_ADAPTERS")
    toml.write_text("video_motion_adapters = [1, 2]\n")
    with pytest.raises(ValueError, match="video_motion_adapters must be a list of strings"):
        load_config(toml)


def test_worker_processes_get_the_same_allow_list(tmp_path: Path) -> None:
    from pgen.config import Config
    from pgen.serve.app import config_from_env, config_to_env

    config = Config(home=tmp_path, video_motion_adapters=("/models/mm-v2", "org/motion"))
    assert config_from_env(config_to_env(config)) == config
