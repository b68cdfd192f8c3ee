"""The real-speech reader of ``benchmarks/speech.py --real``: transcripts beside a clip or in
CMU Sphinx's ``*.transcription`` lines; clips without one skipped and counted; a malformed
line refused naming its file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pgen.bench.speech_clips import real_clips
from pgen.models.speech_audio import Audio


def _clip(path: Path, seconds: float = 0.5) -> None:
    tone = np.sin(np.linspace(0, 800 * seconds, int(16000 * seconds))).astype(np.float32)
    Audio(0.3 * tone, 16000).save(path)


def test_transcripts_beside_clips_and_in_sphinx_listings(tmp_path: Path) -> None:
    book, cards = tmp_path / "book", tmp_path / "cards"
    book.mkdir(), cards.mkdir()
    _clip(book / "a.wav")
    (book / "a.txt").write_text("he might even have been\nmade amiable himself\n")
    _clip(book / "untold.wav")  # no transcript: skipped
    _clip(cards / "001.wav", 1.0)
    (cards / "cards.transcription").write_text("<s> ten of clubs  </s> (001)\n\n")
    clips, skipped = real_clips([book, cards])
    assert [(name, text) for name, _, text in clips] == [
        ("book/a.wav", "he might even have been made amiable himself"),
        ("cards/001.wav", "ten of clubs"),
    ]
    assert skipped == 1 and clips[1][1].seconds == pytest.approx(1.0)


def test_bad_listings_and_empty_folders_are_refused_in_one_line(tmp_path: Path) -> None:
    _clip(tmp_path / "001.wav")
    (tmp_path / "x.transcription").write_text("<s> ten of clubs </s> (001)\nfive five\n")
    with pytest.raises(ValueError, match=r"x\.transcription:2: expected 'words \(STEM\)'"):
        real_clips([tmp_path])
    (tmp_path / "x.transcription").unlink()
    with pytest.raises(ValueError, match="no clip with a transcript"):
        real_clips([tmp_path])
    with pytest.raises(ValueError, match="not a folder"):
        real_clips([tmp_path / "missing"])
