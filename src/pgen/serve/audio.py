"""Speech over HTTP: OpenAI-compatible ``POST /v1/audio/speech`` (text in, a WAV clip out,
in the voice the strategy picks for the ``user``) and ``POST /v1/audio/transcriptions``
(a clip in, its transcript out), and ``POST /users/{user}/voice-notes`` (a clip kept as the
user's voice note: a document whose text is the transcript, its audio the user's artifact).

``model`` picks the speech strategy (``voice``, ``own-voice``; ``pgen/voice`` too);
``voice`` names a voice of the synthesizer, or ``profile`` for the one in the user's profile
(OpenAI's stock names are not ours: an unknown voice is refused with the known ones). The
clip is saved as the user's output (its id in the ``x-pgen-output-id`` header).
``response_format`` is ``wav`` or ``pcm``; with ``stream_format`` (``audio`` or ``sse``)
the clip is streamed as it is made (``pgen.serve.speech_stream``: Piper a sentence at a
time, SpeechT5 in one piece).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from pgen.context.base import UserNotFoundError
from pgen.errors import InvalidRequest
from pgen.models.tts import MAX_TEXT
from pgen.personalize import strategy_names
from pgen.personalize.speech import SpeechRequest
from pgen.run.voice_notes import describe
from pgen.serve.deps import TenantEngine
from pgen.serve.errors import ApiError
from pgen.serve.openai import _unknown_user
from pgen.serve.speech_stream import FORMATS, STREAM_FORMATS, clip_response, stream_speech
from pgen.serve.userpaths import UserId

router = APIRouter(tags=["speech"])
PROFILE = "profile"  # the voice: the one in the user's profile
MAX_CLIP_BYTES = 50 * 1024 * 1024


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=200)
    input: str = Field(min_length=1, max_length=MAX_TEXT)
    voice: str = Field(PROFILE, max_length=100)
    user: str | None = Field(None, max_length=256)
    response_format: str = Field("wav", max_length=16)
    stream_format: str | None = Field(None, max_length=16)  # audio, sse: streamed
    # pgen's own: speak a text strategy's answer to ``input`` instead of ``input`` itself,
    # and which voice subject own-voice speaks as.
    text_strategy: str = Field("", max_length=64)
    subject: str | None = Field(None, max_length=200)


def _strategy(model: str) -> str:
    name = model.removeprefix("pgen/")
    known = strategy_names("speech")
    if name not in known:
        raise ApiError(
            400, "invalid_request", f"unknown model {model!r}; choose from {', '.join(known)}"
        )
    return name


@router.post("/v1/audio/speech")
async def speech(body: SpeechBody, engine: TenantEngine) -> Response:
    """The ``user``'s clip: ``input`` spoken in the voice ``model`` picks."""
    if not body.user:
        raise ApiError(400, "invalid_request", "set 'user' to the pgen user to speak for")
    if body.response_format not in FORMATS:
        raise ApiError(
            400,
            "invalid_request",
            f"response_format {body.response_format!r}: {' or '.join(FORMATS)}",
        )
    if body.stream_format is not None and body.stream_format not in STREAM_FORMATS:
        raise ApiError(
            400,
            "invalid_request",
            f"stream_format {body.stream_format!r}: {' or '.join(STREAM_FORMATS)}",
        )
    strategy = _strategy(body.model)
    voice = None if body.voice == PROFILE or strategy != "voice" else body.voice
    request = SpeechRequest(
        body.user, body.input, strategy, body.text_strategy, voice=voice, subject=body.subject
    )
    try:  # before anything is spoken: a refusal is a JSON error, never a stream
        request = await run_in_threadpool(engine.check, request)
    except UserNotFoundError:
        raise _unknown_user() from None
    if body.stream_format is not None:
        return await stream_speech(engine, request, body.response_format, body.stream_format)
    result = await run_in_threadpool(engine.generate, request)
    return clip_response(result, body.response_format)


def _read(file: UploadFile) -> bytes:
    data = file.file.read(MAX_CLIP_BYTES + 1)
    if len(data) > MAX_CLIP_BYTES:
        raise InvalidRequest(f"{file.filename}: over {MAX_CLIP_BYTES // 2**20} MiB")
    return data


@router.post("/v1/audio/transcriptions")
def transcriptions(
    engine: TenantEngine,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form(max_length=200)] = "whisper-1",
    language: Annotated[str | None, Form(max_length=16)] = None,
    response_format: Annotated[str, Form(max_length=16)] = "json",
) -> Any:
    """The clip's transcript with the configured ASR (``model`` is accepted and ignored)."""
    if response_format not in ("json", "verbose_json", "text"):
        raise ApiError(
            400,
            "invalid_request",
            f"response_format {response_format!r}: json, verbose_json or text",
        )
    note = engine.transcribe(_read(file), file.filename or "upload.wav", language=language)
    if response_format == "text":
        return PlainTextResponse(note.transcript.text)
    found = describe(note)
    if response_format == "json":
        return {"text": found["text"]}
    return {key: found[key] for key in ("text", "language", "duration", "segments")}


@router.post("/users/{user_id}/voice-notes", tags=["context"])
def voice_note(
    user_id: UserId,
    engine: TenantEngine,
    file: Annotated[UploadFile, File()],
    doc_id: Annotated[str | None, Form(max_length=200)] = None,
    language: Annotated[str | None, Form(max_length=16)] = None,
    title: Annotated[str | None, Form(max_length=500)] = None,
) -> Any:
    """A clip kept as the user's voice note (a document: its text the transcript)."""
    options = {"user_id": user_id, "doc_id": doc_id, "language": language, "title": title}
    note = engine.transcribe(_read(file), file.filename or "upload.wav", **options)
    return describe(note)


@router.post("/users/{user_id}/voice-clips", tags=["context"])
def voice_clip(user_id: UserId, engine: TenantEngine, file: Annotated[UploadFile, File()]) -> Any:
    """A reference clip of the user's voice: name it by ``ref`` in a ``voice`` subject's
    ``image_paths`` (``POST /records``), for own-voice."""
    return engine.save_upload(_read(file), user_id, audio=file.filename or "clip.wav")
