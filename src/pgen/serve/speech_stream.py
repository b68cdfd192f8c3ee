"""Streamed speech for ``POST /v1/audio/speech``: with ``stream_format`` ``audio`` the clip
goes out as a chunked body while it is synthesized (Piper: a sentence at a time), with
``sse`` as server-sent events (``speech.audio.delta`` carrying base64 bytes, then
``speech.audio.done``, whose ``pgen`` field has the output id).

The bytes are the same either way, and joined they are the unstreamed response's: ``pcm``
is 16-bit little-endian mono at the voice's rate (the ``x-pgen-sample-rate`` header; not
OpenAI's fixed 24 kHz: resampling piece by piece would not join into the whole clip), and
``wav`` is the same samples after a header whose sizes say "unknown" (0xFFFFFFFF), as a
WAV of unknown length is streamed. The response starts once the first piece is made, so a
request that fails before any sound (an unknown user, a failed text strategy) gets a JSON
error, not a broken stream; a failure after it ends the stream (``sse``: an ``error``
event last). The clip is saved as the user's output as it is unstreamed, even if the
client goes away.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import wave
from collections.abc import AsyncIterator
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from pgen.engine import Engine
from pgen.models.speech_audio import Audio
from pgen.models.tts import ClipSink
from pgen.personalize.speech import SpeechRequest
from pgen.results import Generation
from pgen.run.speech import audio_file
from pgen.serve.errors import error_json, log

FORMATS = ("wav", "pcm")
STREAM_FORMATS = ("audio", "sse")
MEDIA_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm"}
UNKNOWN_SIZE = 0xFFFFFFFF
_speaking: set[asyncio.Future[Generation]] = set()  # streamed clips still being made


def wav_header(rate: int) -> bytes:
    """The 44-byte header of a 16-bit mono WAV of unknown length."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", UNKNOWN_SIZE)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", UNKNOWN_SIZE)
    )


def pcm_of_wav(data: bytes) -> tuple[bytes, int]:
    """The samples and rate of a WAV pgen saved (16-bit mono)."""
    with wave.open(io.BytesIO(data), "rb") as clip:
        return clip.readframes(clip.getnframes()), clip.getframerate()


def clip_response(result: Generation, response_format: str) -> Response:
    """The whole clip, unstreamed, with its output id (``x-pgen-output-id``)."""
    data = audio_file(result.media).read_bytes()
    # The words spoken are on record (GET /users/{u}/outputs); a header could not carry
    # every text (a line break is no header value).
    headers = {"x-pgen-output-id": str(result.output_id)}
    if response_format == "pcm":
        data, rate = pcm_of_wav(data)
        headers["x-pgen-sample-rate"] = str(rate)
    return Response(data, media_type=MEDIA_TYPES[response_format], headers=headers)


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream_speech(
    engine: Engine, request: SpeechRequest, response_format: str, stream_format: str
) -> Response:
    """The checked ``request`` spoken and streamed as its pieces are made."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[Audio | None] = asyncio.Queue()

    def put(piece: Audio | None) -> None:  # from the worker thread
        loop.call_soon_threadsafe(pieces.put_nowait, piece)

    def speak() -> Generation:
        try:
            made: Generation = engine.generate_many([request], sinks=[ClipSink(put)], checked=True)[
                0
            ]
            return made
        finally:
            put(None)  # after every piece: the queue is first in, first out

    made = asyncio.ensure_future(run_in_threadpool(speak))
    _speaking.add(made)  # held until done, even if its client goes away
    made.add_done_callback(_speaking.discard)
    first = await pieces.get()
    if first is None:  # no piece came: the error, or the whole (empty) clip
        return clip_response(await made, response_format)
    headers = {"x-pgen-sample-rate": str(first.rate), "Cache-Control": "no-cache"}
    if stream_format == "sse":
        events = _events(first, pieces, made, response_format)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    body = _bytes(first, pieces, made, response_format)
    return StreamingResponse(body, media_type=MEDIA_TYPES[response_format], headers=headers)


async def _pieces(
    first: Audio, pieces: asyncio.Queue[Audio | None], response_format: str
) -> AsyncIterator[bytes]:
    """Each piece's bytes as it comes (a WAV's header before the first)."""
    piece: Audio | None = first
    if response_format == "wav":
        yield wav_header(first.rate) + first.pcm_bytes()
        piece = await pieces.get()
    while piece is not None:
        yield piece.pcm_bytes()
        piece = await pieces.get()


async def _bytes(
    first: Audio,
    pieces: asyncio.Queue[Audio | None],
    made: asyncio.Future[Generation],
    response_format: str,
) -> AsyncIterator[bytes]:
    async for data in _pieces(first, pieces, response_format):
        yield data
    try:
        await made
    except Exception as error:  # the status line has gone out: the body just ends
        log.error("streamed speech failed: %s", error)


async def _events(
    first: Audio,
    pieces: asyncio.Queue[Audio | None],
    made: asyncio.Future[Generation],
    response_format: str,
) -> AsyncIterator[str]:
    async for data in _pieces(first, pieces, response_format):
        yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
    try:
        result = await made
    except Exception as error:  # the status line has gone out: the error is an event
        status, body = error_json(error)
        if status >= 500:
            log.error("streamed speech failed", exc_info=error)
        yield _event({"type": "error", **body})
        return
    done = {"output_id": result.output_id, **result.details}
    yield _event({"type": "speech.audio.done", "pgen": done})
