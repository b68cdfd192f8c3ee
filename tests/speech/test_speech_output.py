"""The speech modality through the modality contract: ``Engine.generate`` with a
``SpeechRequest`` speaks a text strategy's answer (or the instruction) in the voice the
user chose (Piper, offline) or in their own voice (SpeechT5 conditioned on the x-vector of
their reference clips; tiny random models), saves the clip as the output's WAV media with
provenance, and refuses an unknown voice or a missing voice subject before anything is
written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pgen.cli.main import main
from pgen.config import Config
from pgen.context.records import Document, Subject, User
from pgen.engine import Engine
from pgen.errors import InvalidRequest
from pgen.evaluate.metrics.speech import wer
from pgen.models.speech_audio import load_audio
from pgen.personalize.speech import SpeechRequest
from pgen.run.speech import SPEAKER_EMBEDDINGS
from tests.speech.conftest import REFERENCE


def _people(say: Any) -> list[Any]:
    return [
        User(user_id="ann", profile={"voice": "joe"}),
        User(user_id="bo", profile={"voice": "nobody"}),
        Document(user_id="ann", doc_id="d1", text="I grow lemons on my balcony."),
        Subject(user_id="ann", name="me", class_word="voice", image_paths=[str(say(REFERENCE))]),
    ]


def test_voice_speaks_the_instruction_in_the_profile_voice_and_saves_a_wav(
    config: Config, say: Any
) -> None:
    text = "Good morning, the garden needs water today."
    with Engine.open(config) as engine:
        engine.ingest(_people(say))
        result = engine.generate(SpeechRequest("ann", text, "voice", text_strategy=""))
        assert result.modality == "speech" and result.text == text
        (clip_path,) = result.media
        assert clip_path.suffix == ".wav" and clip_path.is_relative_to(engine.store.artifacts_root)
        clip = load_audio(clip_path)
        assert clip.rate == 22050 and clip.seconds > 1.0
        assert result.provenance.model == "piper+joe"
        assert "voice 'joe' from the user's profile" in result.provenance.notes
        heard = engine.transcribe(clip_path.read_bytes(), "out.wav").transcript.text
        assert wer([heard], [text]) <= 0.2, heard
        (stored,) = engine.outputs("ann")
        assert stored.modality == "speech" and stored.media == [str(clip_path)]
        assert stored.provenance["details"]["voice"] == "joe"


def test_an_unknown_voice_is_refused_before_anything_is_written(config: Config, say: Any) -> None:
    with Engine.open(config) as engine:
        engine.ingest(_people(say))
        with pytest.raises(
            InvalidRequest,
            match=r"unknown voice 'nobody' \(from the user's profile\); choose from joe",
        ):
            engine.generate(SpeechRequest("bo", "hello", "voice", text_strategy=""))
        with pytest.raises(InvalidRequest, match=r"unknown voice 'alloy' \(from the request"):
            engine.generate(SpeechRequest("ann", "hello", "voice", text_strategy="", voice="alloy"))
        with pytest.raises(InvalidRequest, match="no voice subject"):
            engine.generate(SpeechRequest("bo", "hello", "own-voice", text_strategy=""))
        with pytest.raises(InvalidRequest, match="unknown text strategy 'nope'"):
            engine.generate(SpeechRequest("ann", "hello", "voice", text_strategy="nope"))
        assert engine.outputs("ann") == [] and engine.outputs("bo") == []
        assert engine.store.row_counts()["outputs"] == 0


def test_the_spoken_words_are_the_text_strategys_answer(config: Config, say: Any) -> None:
    with Engine.open(config) as engine:
        engine.ingest(_people(say))
        result = engine.generate(SpeechRequest("ann", "What do I grow?", "voice", "rag", k=1))
        assert result.provenance.documents == ["d1"]
        assert any("words by the text strategy 'rag'" in n for n in result.provenance.notes)
        text = engine.generate("ann", "What do I grow?", strategy="rag", k=1).text
        assert result.text == text  # greedy: the same answer the text modality gives


def test_own_voice_conditions_speecht5_on_the_users_speaker_embedding(
    config: Config, say: Any
) -> None:
    with Engine.open(config) as engine:
        engine.ingest(_people(say))
        first = engine.generate(SpeechRequest("ann", "hello there", "own-voice", text_strategy=""))
        clip = load_audio(first.media[0])
        assert clip.rate == 16000 and clip.seconds > 0
        assert first.provenance.subjects == ["me"] and first.provenance.model.endswith("+own-voice")
        folder = engine.store.artifacts("ann")[(SPEAKER_EMBEDDINGS, "me")]
        vector = np.load(folder / "speaker.npy")
        assert vector.shape == (8,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
        assert first.provenance.artifacts == [str(folder)]
        stamp = (folder / "speaker.npy").stat().st_mtime_ns
        second = engine.generate(SpeechRequest("ann", "hello there", "own-voice", text_strategy=""))
        assert (folder / "speaker.npy").stat().st_mtime_ns == stamp  # reused, not recomputed
        same = load_audio(second.media[0]).samples
        assert np.array_equal(same, clip.samples)  # deterministic for the same words and voice


def test_pgen_generate_speaks(
    tmp_path: Path, config: Config, say: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with Engine.open(config) as engine:
        engine.ingest(_people(say))
    toml = tmp_path / "pgen.toml"
    speech = config.speech_model
    assert isinstance(speech, dict)
    toml.write_text(
        f'home = "{config.home}"\ntext_model = "{config.text_model}"\nthreads = 1\n'
        f'[speech_model]\nprovider = "local"\n[speech_model.settings]\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in speech["settings"].items())
    )
    import os

    os.environ["PGEN_CONFIG"] = str(toml)
    try:
        argv = ["generate", "--modality", "speech", "--strategy", "voice", "--user", "ann"]
        assert main([*argv, "--option", "text_strategy=", "Hello from the command line"]) == 0
    finally:
        del os.environ["PGEN_CONFIG"]
    assert "Hello from the command line" in capsys.readouterr().out
    with Engine.open(config) as engine:
        (stored,) = engine.outputs("ann")
        assert stored.modality == "speech" and stored.media[0].endswith(".wav")
