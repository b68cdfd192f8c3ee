from __future__ import annotations

from pathlib import Path

import pytest

from pgen.config import Config, load_config


def test_defaults_then_toml_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "pgen.toml"
    toml.write_text(f'home = "{tmp_path}"\nthreads = 3\ntext_model = "from-toml"\n')
    monkeypatch.setenv("PGEN_TEXT_MODEL", "from-env")
    config = load_config(toml, threads=None, embed_model="flag-model")
    assert config.home == tmp_path and config.threads == 3
    assert config.text_model == "from-env" and config.embed_model == "flag-model"
    assert config.store_path == tmp_path / "pgen.sqlite"
    assert Config().text_model == "smollm2"


def test_bad_settings_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "pgen.toml"
    toml.write_text('colour = "blue"\n')
    with pytest.raises(ValueError, match=r"unknown settings \['colour'\]"):
        load_config(toml)
    monkeypatch.setenv("PGEN_THREADS", "many")
    with pytest.raises(ValueError, match="threads must be an integer, got 'many'"):
        load_config()
    # A --config file that does not exist is an error, not silently ignored.
    with pytest.raises(FileNotFoundError, match=r"absent\.toml: no such file"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        load_config(tmp_path)
