"""Voice notes as context: audio transcribed at ingest into a document like any other.

A document whose ``fields.audio_path`` names a clip (``pgen ingest``: resolved against the
file's folder like a photo) or an uploaded clip (``Engine.transcribe`` with a user, over
HTTP ``POST /users/{u}/voice-notes``) becomes a document whose text is the transcript, with
its language, timed segments and the ASR model in ``fields``; retrieval, ``rag``, ``profile``
and memory then read it as they read any text. The audio itself is copied into the user's
artifact folder (kind ``voice-notes``), which delete-user removes; the document names it
(``fields.audio``) instead of a path outside the store.

Reference clips of a ``voice`` subject (the user's own voice, for ``own-voice``) are
checked to be audio at ingest, so a bad clip is refused before anything is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgen.context.base import ContextStore
from pgen.context.ingest import AUDIO, IngestError, Located
from pgen.context.records import Document, Record, Subject
from pgen.errors import InvalidRequest
from pgen.models.asr import SpeechRecognizer, Transcript
from pgen.models.speech_audio import Audio, AudioError, load_audio, read_audio

VOICE_NOTES = "voice-notes"  # the artifact kind of a voice note's audio
VOICE_SUBJECT = "voice"  # the class word of a subject whose references are voice clips
VOICE_NOTE_KIND = "voice note"  # the document kind an upload is given


@dataclass(frozen=True)
class VoiceNote:
    """A transcript, and the document it was stored as (None when only transcribed)."""

    transcript: Transcript
    document: Document | None = None


def _as_note(record: Document, audio: Audio, data: bytes, suffix: str, t: Transcript) -> Document:
    fields = {k: v for k, v in record.fields.items() if k != AUDIO}
    fields.update(t.as_fields())
    fields["audio"] = {
        "artifact": f"{VOICE_NOTES}/{record.doc_id}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": suffix.lstrip(".") or "wav",
        "seconds": round(audio.seconds, 3),
    }
    return record.model_copy(update={"text": t.text, "fields": fields})


def _keep_audio(store: ContextStore, user_id: str, doc_id: str, data: bytes, suffix: str) -> None:
    folder = store.artifact_path(user_id, VOICE_NOTES, doc_id)
    for old in folder.glob("audio.*"):
        old.unlink()
    partial = folder / "audio.part"
    partial.write_bytes(data)
    partial.replace(folder / f"audio{suffix or '.wav'}")


class VoiceNoteHook:
    """The ingest hook (``pgen.context.ingest.IngestHook``): transcribe before the batch is
    written, keep the audio once it is."""

    def __init__(self, store: ContextStore, recognizer: Callable[[], SpeechRecognizer]) -> None:
        self.store = store
        self.recognizer = recognizer
        self._pending: list[tuple[str, str, bytes, str]] = []

    def before(self, located: list[Located]) -> list[Located]:
        self._pending = []
        done = []
        for loc in located:
            record = loc.record
            if isinstance(record, Document) and isinstance(record.fields.get(AUDIO), str):
                record = self._transcribed(record, loc.where)
            elif isinstance(record, Subject) and record.class_word == VOICE_SUBJECT:
                for path in record.image_paths:
                    try:
                        load_audio(path)
                    except AudioError as error:
                        raise IngestError(loc.where, f"field 'image_paths': {error}") from None
            done.append(Located(record, loc.where))
        return done

    def _transcribed(self, record: Document, where: str) -> Document:
        path = Path(str(record.fields[AUDIO]))
        try:
            data = path.read_bytes()
            audio = read_audio(data, str(path), suffix=path.suffix)
        except OSError as error:
            raise IngestError(
                where, f"field 'fields.audio_path': cannot read {path} ({error.strerror})"
            ) from None
        except AudioError as error:
            raise IngestError(where, f"field 'fields.audio_path': {error}") from None
        language = record.fields.get("language")
        transcript = self.recognizer().transcribe(
            audio, language if isinstance(language, str) else None
        )
        if not transcript.text:
            raise IngestError(where, f"field 'fields.audio_path': no speech recognized in {path}")
        self._pending.append((record.user_id, record.doc_id, data, path.suffix.lower()))
        return _as_note(record, audio, data, path.suffix.lower(), transcript)

    def after(self, records: list[Record]) -> None:
        pending, self._pending = self._pending, []
        try:
            for user_id, doc_id, data, suffix in pending:
                _keep_audio(self.store, user_id, doc_id, data, suffix)
        except BaseException:
            # The notes whose audio could not be kept are taken back out: all or nothing.
            for user_id, doc_id, _, _ in pending:
                self.store.delete_documents(user_id, [doc_id])
            raise


def transcribe(
    store: ContextStore,
    recognizer: Callable[[], SpeechRecognizer],
    data: bytes,
    filename: str,
    *,
    user_id: str | None = None,
    doc_id: str | None = None,
    language: str | None = None,
    title: str | None = None,
) -> VoiceNote:
    """An uploaded clip's transcript; with ``user_id``, also kept as the user's voice note
    (a document, its audio an artifact of theirs). Checked before anything is written."""
    if user_id is not None:
        store.user(user_id)  # an unknown user: not found, before any model loads
    suffix = Path(filename).suffix.lower()
    try:
        audio = read_audio(data, filename or "the upload", suffix=suffix or None)
    except AudioError as error:
        raise InvalidRequest(str(error)) from None
    transcript = recognizer().transcribe(audio, language)
    if user_id is None:
        return VoiceNote(transcript)
    if not transcript.text:
        raise InvalidRequest(f"{filename or 'the upload'}: no speech recognized")
    name = doc_id or f"voice-{hashlib.sha256(data).hexdigest()[:16]}"
    try:
        record = Document(user_id=user_id, doc_id=name, kind=VOICE_NOTE_KIND, text="", title=title)
    except ValueError as error:
        raise InvalidRequest(f"doc_id: {str(error).splitlines()[-1]}") from None
    note = _as_note(record, audio, data, suffix or ".wav", transcript)
    store.add([note])
    try:
        _keep_audio(store, user_id, name, data, suffix or ".wav")
    except BaseException:
        store.delete_documents(user_id, [name])
        raise
    return VoiceNote(transcript, note)


def voice_note_audio(store: ContextStore, user_id: str, doc_id: str) -> Path | None:
    """The kept audio of one of the user's voice notes, if any."""
    folder = store.artifacts(user_id).get((VOICE_NOTES, doc_id))
    files = sorted(folder.glob("audio.*")) if folder is not None else []
    return files[0] if files else None


def describe(note: VoiceNote) -> dict[str, Any]:
    t = note.transcript
    return {
        "text": t.text,
        "language": t.language,
        "duration": t.duration,
        "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in t.segments],
        "model": t.model,
        "doc_id": None if note.document is None else note.document.doc_id,
    }
