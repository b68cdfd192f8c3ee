"""Voice notes as context: a clip named by a document in an ingest folder (or uploaded) is
transcribed by the real Whisper tiny.en; the transcript is the document's text, which
retrieval and rag then use; language, segments and timestamps are kept; the audio is kept
as the user's artifact; bad audio is refused in one line with nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pgen.components import TextRequest
from pgen.config import Config
from pgen.context.ingest import IngestError
from pgen.engine import Engine
from pgen.errors import InvalidRequest
from pgen.evaluate.metrics.speech import wer
from pgen.run.voice_notes import VOICE_NOTES, voice_note_audio
from tests.speech.conftest import NOTE


def _folder(
    tmp_path: Path, clip: Path | None, *, name: str = "v1.wav", data: bytes | None = None
) -> Path:
    folder = tmp_path / "in"
    (folder / "notes").mkdir(parents=True, exist_ok=True)
    target = folder / "notes" / name
    target.write_bytes(clip.read_bytes() if clip is not None else (data or b""))
    records = [
        {"type": "user", "user_id": "u1", "profile": {"city": "Lyon"}},
        {"type": "document", "user_id": "u1", "doc_id": "d1", "text": "I like jazz records."},
        {
            "type": "document",
            "user_id": "u1",
            "doc_id": "v1",
            "kind": "voice note",
            "text": "",
            "fields": {"audio_path": f"notes/{name}"},
        },
    ]
    path = folder / "context.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_a_voice_note_in_an_ingest_folder_becomes_a_document_with_its_transcript(
    tmp_path: Path, config: Config, say: Any
) -> None:
    path = _folder(tmp_path, say(NOTE))
    with Engine.open(config) as engine:
        engine.ingest(path)
        (note,) = engine.documents("u1", ["v1"])
        assert wer([note.text], [NOTE]) <= 0.2, note.text
        assert note.kind == "voice note"
        assert note.fields["language"] == "en"
        segments = note.fields["segments"]
        assert segments and segments[0]["start"] >= 0
        assert segments[-1]["end"] <= note.fields["duration"] + 0.5
        assert note.fields["duration"] == pytest.approx(note.fields["audio"]["seconds"], abs=0.01)
        assert "audio_path" not in note.fields  # the store names its own copy, not the file
        kept = voice_note_audio(engine.store, "u1", "v1")
        assert kept is not None and kept.read_bytes() == say(NOTE).read_bytes()
        assert (VOICE_NOTES, "v1") in engine.store.artifacts("u1")
        # The transcript is context like any other: search and rag find it.
        hits = engine.search("u1", "tomatoes garden", k=1)
        assert [h.document.doc_id for h in hits] == ["v1"]
        (plan,) = engine.prepare([TextRequest("u1", "What did I plant in the garden?", "rag", k=1)])
        assert plan.provenance.documents == ["v1"]
        assert "tomatoes" in plan.chat[0].content.lower()


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("v1.wav", b"this is not audio at all, only text", "not audio (no RIFF/WAVE header)"),
        ("v1.txt", b"RIFF....WAVE", "unsupported audio format '.txt'"),
        ("v1.wav", b"", "the file is empty"),
    ],
)
def test_bad_audio_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, config: Config, name: str, data: bytes, problem: str
) -> None:
    path = _folder(tmp_path, None, name=name, data=data)
    with Engine.open(config) as engine:
        with pytest.raises(IngestError) as caught:
            engine.ingest(path)
        message = str(caught.value)
        assert "\n" not in message and problem in message
        assert f"{path}:3" in message and "fields.audio_path" in message
        assert engine.users() == []
        assert engine.store.row_counts()["documents"] == 0


def test_too_long_audio_is_refused(tmp_path: Path) -> None:
    from pgen.models.speech_audio import Audio, AudioError, read_audio

    long = Audio(__import__("numpy").zeros(16000 * 5, "float32"), 16000).wav_bytes()
    with pytest.raises(AudioError, match=r"too long \(5 s\); at most 2 s"):
        read_audio(long, "long.wav", suffix=".wav", max_seconds=2)


def test_an_uploaded_clip_is_kept_as_a_voice_note(tmp_path: Path, config: Config, say: Any) -> None:
    with Engine.open(config) as engine:
        engine.ingest([__import__("pgen.context.records", fromlist=["User"]).User(user_id="u2")])
        data = say(NOTE).read_bytes()
        only = engine.transcribe(data, "note.wav")
        assert only.document is None and wer([only.transcript.text], [NOTE]) <= 0.2
        assert engine.store.row_counts("u2")["documents"] == 0
        kept = engine.transcribe(data, "note.wav", user_id="u2", doc_id="n1", title="garden")
        assert kept.document is not None and kept.document.doc_id == "n1"
        (stored,) = engine.documents("u2")
        assert stored.text == kept.transcript.text and stored.title == "garden"
        assert voice_note_audio(engine.store, "u2", "n1") is not None
        with pytest.raises(InvalidRequest, match="not audio"):
            engine.transcribe(b"plain text", "x.wav", user_id="u2", doc_id="n2")
        assert [d.doc_id for d in engine.documents("u2")] == ["n1"]


def test_the_transformers_whisper_backend_transcribes_in_30_second_windows(
    tiny_whisper: Path,
) -> None:
    import numpy as np

    from pgen.models.asr import load_recognizer
    from pgen.models.speech_audio import Audio

    recognizer = load_recognizer(str(tiny_whisper), tiny_whisper)
    rng = np.random.default_rng(0)
    clip = Audio((rng.standard_normal(16000 * 35) * 0.05).astype("float32"), 16000)
    transcript = recognizer.transcribe(clip)
    assert recognizer.name.startswith("transformers:")
    assert [(s.start, s.end) for s in transcript.segments] == [(0.0, 30.0), (30.0, 35.0)]
    assert transcript.text == " ".join(s.text for s in transcript.segments if s.text)
    assert transcript.duration == pytest.approx(35.0)


def test_a_flac_clip_is_decoded_and_garbage_in_a_decoded_format_is_not_audio(say: Any) -> None:
    import io

    import numpy as np

    av = pytest.importorskip("av")
    from pgen.models.speech_audio import AudioError, load_audio, read_audio

    clip = load_audio(say(NOTE))
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="flac") as out:
        stream = out.add_stream("flac", rate=clip.rate)
        stream.layout = "mono"
        pcm = (clip.samples * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.rate = clip.rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    decoded = read_audio(buffer.getvalue(), "note.flac", suffix=".flac")
    assert decoded.rate == 16000 and decoded.seconds == pytest.approx(clip.seconds, abs=0.01)
    with pytest.raises(AudioError, match=r"note\.mp3: not audio that can be decoded"):
        read_audio(b"garbage" * 100, "note.mp3", suffix=".mp3")
