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


def test_a_component_table_reaches_the_factory(tmp_path: Path) -> None:
    from pgen.factory import build_text_model, text_model_spec
    from pgen.models.http import OpenAITextModel

    toml = tmp_path / "pgen.toml"
    toml.write_text(
        '[text_model]\nprovider = "openai"\n'
        'settings = { model = "llama", base_url = "http://127.0.0.1:9/v1" }\n'
    )
    config = load_config(toml)
    assert text_model_spec(config.text_model).provider == "openai"
    model = build_text_model(config)  # no request is sent until it generates
    assert isinstance(model, OpenAITextModel) and model.model == "llama"
    assert text_model_spec("openai:m@http://h:1").settings == {
        "model": "m",
        "base_url": "http://h:1",
    }
    toml.write_text('[text_model]\nprovider = "magic"\n')
    with pytest.raises(ValueError, match="unknown provider 'magic'"):
        build_text_model(load_config(toml))


def test_a_local_model_table_takes_its_settings(tmp_path: Path, tiny_llama: Path) -> None:
    from pgen.factory import build_text_model
    from pgen.models.text import TransformersTextModel

    toml = tmp_path / "pgen.toml"
    toml.write_text(
        f'[text_model]\nprovider = "transformers"\nsettings = {{ path = "{tiny_llama}", '
        'batch_size = 3, max_adapters = 5, adapter_mixing = "peft" }\n'
    )
    model = build_text_model(load_config(toml))
    assert isinstance(model, TransformersTextModel)
    assert (model.batch_size, model.adapters.capacity, model.adapters.mixing) == (3, 5, "peft")
    toml.write_text(
        f'[text_model]\nprovider = "transformers"\nsettings = {{ path = "{tiny_llama}", '
        "beams = 4 }\n"
    )
    with pytest.raises(ValueError, match="text_model settings: unknown beams"):
        build_text_model(load_config(toml))
