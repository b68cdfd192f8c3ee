"""Voices are biometric data: a user's voice notes (audio and transcript), their reference
clips' speaker embedding and their spoken outputs are theirs alone, and delete-user leaves
no byte of any of them under the store's home (files, tables, the database's raw bytes),
while another user's stay whole. (Both users ingest the same clips, so only the id tells
them apart in the bytes until the second one is deleted too.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pgen.config import Config
from pgen.engine import Engine
from pgen.personalize.speech import SpeechRequest
from pgen.run.speech import SPEAKER_EMBEDDINGS
from pgen.run.voice_notes import VOICE_NOTES, voice_note_audio
from tests.speech.conftest import NOTE, REFERENCE

GONE = "zelda-7f3q"


def _pcm(path: Path) -> bytes:
    return path.read_bytes()[1000:3000]  # a stretch of samples, past the header


def _traces(home: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in sorted(home.rglob("*")):
        if GONE in path.name:
            found.append(f"name: {path}")
        if path.is_file():
            data = path.read_bytes()
            found += [f"bytes: {path}" for n in needles if n in data]
    return found


def test_delete_user_removes_voice_notes_speaker_embeddings_and_spoken_outputs(
    tmp_path: Path, config: Config, say: Any
) -> None:
    data = tmp_path / "in"
    data.mkdir()
    note, reference = say(NOTE), say(REFERENCE)
    records = (
        [{"type": "user", "user_id": u, "profile": {"voice": "joe"}} for u in (GONE, "kept")]
        + [
            {
                "type": "document",
                "user_id": u,
                "doc_id": "v1",
                "kind": "voice note",
                "text": "",
                "fields": {"audio_path": str(note)},
            }
            for u in (GONE, "kept")
        ]
        + [
            {
                "type": "subject",
                "user_id": u,
                "name": "me",
                "class_word": "voice",
                "image_paths": [str(reference)],
            }
            for u in (GONE, "kept")
        ]
    )
    (data / "context.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    import os

    os.environ["PGEN_MEDIA_ROOT"] = str(note.parent)
    try:
        with Engine.open(config) as engine:
            engine.ingest(data / "context.jsonl")
            spoken = {}
            for user in (GONE, "kept"):
                engine.generate(SpeechRequest(user, "hello there", "own-voice", text_strategy=""))
                spoken[user] = engine.generate(
                    SpeechRequest(user, "Zelda's secret plan", "voice", text_strategy="")
                )
            gone_files = [
                voice_note_audio(engine.store, GONE, "v1"),
                engine.store.artifacts(GONE)[(SPEAKER_EMBEDDINGS, "me")] / "speaker.npy",
                spoken[GONE].media[0],
            ]
            assert all(p is not None and p.is_file() for p in gone_files)
            vector = (gone_files[1]).read_bytes()[-32:]  # the embedding's float bytes
            needles = [GONE.encode(), _pcm(note), vector, _pcm(spoken[GONE].media[0]), b"tomatoes"]
            before = _traces(config.home, needles)
            assert before  # the scan does see them while the user exists
            engine.delete_user(GONE)
            assert engine.store.row_counts(GONE)["documents"] == 0
            assert not any(p.exists() for p in gone_files if p is not None)
            assert _traces(config.home, [GONE.encode()]) == []
            # The other user's copies of the same clips are theirs, and stay.
            assert voice_note_audio(engine.store, "kept", "v1") is not None
            assert (SPEAKER_EMBEDDINGS, "me") in engine.store.artifacts("kept")
            assert (VOICE_NOTES, "v1") in engine.store.artifacts("kept")
            assert spoken["kept"].media[0].is_file()
            kept_note = voice_note_audio(engine.store, "kept", "v1")
            assert kept_note is not None
            assert (
                hashlib.sha256(kept_note.read_bytes()).digest()
                == hashlib.sha256(note.read_bytes()).digest()
            )
            engine.delete_user("kept")
        leftovers = _traces(config.home, needles)
        assert leftovers == [], leftovers
    finally:
        del os.environ["PGEN_MEDIA_ROOT"]
