"""Speech metrics on cases whose answers are known: WER counts, STOI of a clip against
itself, against noise and against a noisier copy, speaker similarity; and ``pgen
eval-speech`` on a spoken output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pgen.cli.main import main
from pgen.config import Config
from pgen.context.records import Subject, User
from pgen.engine import Engine
from pgen.evaluate.metrics.speech import normalize_words, speaker_similarity, stoi, wer, wer_counts
from pgen.models.speech_audio import Audio, load_audio, resample
from pgen.personalize.speech import SpeechRequest
from tests.speech.conftest import NOTE, REFERENCE


def test_wer_counts_substitutions_insertions_and_deletions() -> None:
    assert normalize_words("It's 5 o'clock, Ann!") == ["it's", "5", "o'clock", "ann"]
    assert wer_counts("the cat sat", "the cat sat") == (0, 3)
    assert wer_counts("the bat sat", "the cat sat") == (1, 3)
    assert wer_counts("the cat sat down", "the cat sat") == (1, 3)
    assert wer_counts("cat", "the cat sat") == (2, 3)
    # Corpus WER weighs clips by their words, not each clip's rate equally.
    assert wer(["a b c d", "x"], ["a b c d", "y"]) == pytest.approx(1 / 5)


def test_stoi_is_one_for_the_same_clip_and_falls_with_noise(say: Any) -> None:
    clean = load_audio(say(NOTE))
    rng = np.random.default_rng(0)
    power = float(np.mean(clean.samples**2))

    def noisy(snr_db: float) -> Audio:
        noise = rng.standard_normal(len(clean.samples)) * np.sqrt(power / 10 ** (snr_db / 10))
        return Audio((clean.samples + noise).astype(np.float32), clean.rate)

    same, light, heavy = stoi(clean, clean), stoi(clean, noisy(10)), stoi(clean, noisy(-10))
    assert same == pytest.approx(1.0, abs=1e-6)
    assert 1.0 > light > heavy
    assert heavy < 0.7
    with pytest.raises(ValueError, match="at least"):
        stoi(Audio(clean.samples[:2000], clean.rate), clean)


def test_resampling_keeps_a_tone_and_its_length() -> None:
    t = np.arange(22050) / 22050
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    down = resample(tone, 22050, 16000)
    assert len(down) == 16000
    peak = np.argmax(np.abs(np.fft.rfft(down)))
    assert abs(peak - 440) <= 1


def test_speaker_similarity_is_the_cosine_to_the_references_mean() -> None:
    refs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert speaker_similarity(np.array([1.0, 1.0]), refs) == pytest.approx(1.0)
    assert speaker_similarity(np.array([1.0, -1.0]), refs) == pytest.approx(0.0)


def test_eval_speech_scores_the_users_outputs(
    config: Config, say: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "I planted tomatoes and basil in the garden on Sunday morning."
    with Engine.open(config) as engine:
        engine.ingest(
            [
                User(user_id="ann", profile={"voice": "joe"}),
                Subject(
                    user_id="ann", name="me", class_word="voice", image_paths=[str(say(REFERENCE))]
                ),
            ]
        )
        made = engine.generate(SpeechRequest("ann", text, "voice", text_strategy=""))
        (row,) = engine.evaluate_speech("ann", reference=say(NOTE))
        assert row["output_id"] == made.output_id
        assert row["wer"] <= 0.2 and row["words"] == 11
        assert -1.0 <= row["speaker_similarity"] <= 1.0
        assert row["stoi"] > 0.9  # the same voice saying the same words, deterministically
    toml = tmp_path / "pgen.toml"
    toml.write_text(f'home = "{config.home}"\ntext_model = "{config.text_model}"\nthreads = 1\n')
    import os

    os.environ["PGEN_CONFIG"] = str(toml)
    try:
        assert main(["eval-speech", "--user", "ann", "--json"]) == 0
    finally:
        del os.environ["PGEN_CONFIG"]
    printed = json.loads(capsys.readouterr().out)
    assert printed["summary"]["wer"] <= 0.2 and "speaker_similarity" not in printed["outputs"][0]
