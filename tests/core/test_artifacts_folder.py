"""Artifacts live apart from the database when the config says where (a folder today, a
URL later): uploads and adapters go there, and delete-user empties them there too."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from pgen.config import Config, load_config
from pgen.context.records import User
from pgen.engine import Engine


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_artifacts_go_to_the_configured_folder_and_leave_with_the_user(tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere"
    config = Config(home=tmp_path / "home", artifacts=folder)
    with Engine.open(config) as engine:
        engine.ingest([User(user_id="ann"), User(user_id="bo")])
        saved = engine.save_upload(_png(), "ann")
        engine.save_upload(_png(), "bo")
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) == 2 and all(p.suffix == ".png" for p in files)
    assert saved["ref"].startswith("upload:")
    assert not any((tmp_path / "home").rglob("*.png"))  # nothing beside the database
    with Engine.open(config) as engine:
        engine.delete_user("ann")
    left = [p for p in folder.rglob("*") if p.is_file()]
    assert len(left) == 1  # bo's, not ann's
    assert all(b"ann" not in p.read_bytes() and "ann" not in str(p) for p in left)


def test_the_artifacts_setting_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGEN_ARTIFACTS", str(tmp_path / "art"))
    assert load_config(home=str(tmp_path)).artifacts == tmp_path / "art"
