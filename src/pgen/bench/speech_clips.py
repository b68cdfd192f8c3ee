"""Real recordings with known transcripts, for ``benchmarks/speech.py --real``: every WAV or
FLAC in a folder whose words are in ``STEM.txt`` beside it, or on a line ``words (STEM)``
of a ``*.transcription`` file there (CMU Sphinx's form, as the pocketsphinx sdist's test
clips come; ``<s>``/``</s>`` dropped). Clips without a transcript are skipped and counted;
a malformed transcript line is refused naming its file and line."""

from __future__ import annotations

from pathlib import Path

from pgen.models.speech_audio import Audio, load_audio


def _sphinx_lines(folder: Path) -> dict[str, str]:
    """``words (STEM)`` lines of the folder's ``*.transcription`` files, by stem."""
    found = {}
    for listing in sorted(folder.glob("*.transcription")):
        for number, line in enumerate(listing.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            words, stem = line.rsplit("(", 1) if "(" in line else ("", "")
            if not stem.strip().endswith(")"):
                raise ValueError(f"{listing}:{number}: expected 'words (STEM)', got {line!r}")
            words = words.replace("<s>", " ").replace("</s>", " ")
            found[stem.strip()[:-1]] = " ".join(words.split())
    return found


def real_clips(folders: list[Path]) -> tuple[list[tuple[str, Audio, str]], int]:
    """(name, clip, transcript) of each recording with a transcript, and how many without."""
    clips, skipped = [], 0
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"{folder}: not a folder")
        listed = _sphinx_lines(folder)
        for audio in sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".flac")):
            beside = audio.with_suffix(".txt")
            text = beside.read_text() if beside.is_file() else listed.get(audio.stem)
            if text is None or not text.strip():
                skipped += 1
                continue
            clips.append((f"{folder.name}/{audio.name}", load_audio(audio), " ".join(text.split())))
    if not clips:
        raise ValueError(f"no clip with a transcript in {', '.join(map(str, folders))}")
    return clips, skipped
