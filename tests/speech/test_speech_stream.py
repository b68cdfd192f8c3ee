"""Streamed speech, driven by the official ``openai`` client's streaming response against
uvicorn on loopback: Piper's first sentence reaches the client while the rest is still
being synthesized (the synthesizer waits, after its first piece, for the client to say it
heard it), and the stream joined is the unstreamed clip, byte for byte."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import openai
import pytest

from pgen.config import Config
from pgen.models.speech_audio import Audio
from pgen.models.tts import PiperSynthesizer, spoken_chunks
from pgen.serve.speech_stream import pcm_of_wav
from tests.serve.server import Running, serve_in_thread

TEXT = "The lemons are ripe on the balcony. The basil needs water every morning."


@dataclass
class Hold:
    """While ``armed``, Piper stops after its first piece until ``heard`` is set."""

    armed: bool = False
    heard: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    released: list[bool] = field(default_factory=list)  # heard in time, per held clip


@pytest.fixture
def hold(monkeypatch: pytest.MonkeyPatch) -> Hold:
    held = Hold()
    speak_chunks = PiperSynthesizer.speak_chunks

    def holding(self: PiperSynthesizer, text: str, voice: str) -> Iterator[Audio]:
        pieces = speak_chunks(self, text, voice)
        if held.armed:
            yield next(pieces)
            # The wait is the signal's, bounded only against a hang: an unstreamed
            # response would keep the client from hearing anything before the end.
            held.released.append(held.heard.wait(timeout=60))
        yield from pieces
        held.finished.set()

    monkeypatch.setattr(PiperSynthesizer, "speak_chunks", holding)
    return held


@pytest.fixture
def server(config: Config, piper: Any) -> Any:
    with serve_in_thread(config) as running, running.client("acme") as rest:
        ann = {"type": "user", "user_id": "ann", "profile": {"voice": "joe"}}
        assert rest.post("/records", json={"records": [ann]}).status_code == 200
        yield running


def _client(server: Running, tenant: str = "acme") -> openai.OpenAI:
    return openai.OpenAI(api_key=server.keys[tenant], base_url=f"{server.url}/v1", max_retries=0)


def _speak(server: Running, **options: Any) -> Any:
    return _client(server).audio.speech.with_streaming_response.create(
        model="pgen/voice", voice="profile", input=TEXT, extra_body={"user": "ann"}, **options
    )


def test_the_first_sentence_arrives_before_the_clip_is_made(server: Running, hold: Hold) -> None:
    with _speak(server, response_format="pcm") as whole:
        unstreamed = whole.read()
        rate = whole.headers["x-pgen-sample-rate"]
    assert rate == "22050" and len(unstreamed) > 2 * 22050  # over a second of speech
    hold.armed = True
    hold.finished.clear()
    parts = []
    with _speak(server, response_format="pcm", stream_format="audio") as streamed:
        assert streamed.headers["x-pgen-sample-rate"] == rate
        for data in streamed.iter_bytes():
            if not parts:
                assert not hold.finished.is_set()  # heard while the rest was unmade
                hold.heard.set()
            parts.append(data)
    assert hold.released == [True]
    assert b"".join(parts) == unstreamed
    with server.client("acme") as rest:
        outputs = rest.get("/users/ann/outputs").json()
    assert [o["text"] for o in outputs] == [TEXT, TEXT]  # the streamed clip is kept too


def test_a_streamed_wav_and_server_sent_events_join_into_the_clip(
    server: Running, hold: Hold
) -> None:
    with _speak(server, response_format="wav") as whole:
        unstreamed = whole.read()
    with _speak(server, response_format="wav", stream_format="audio") as streamed:
        wav = streamed.read()
    # The header's sizes say "unknown" (a stream's length is not known ahead); the rate
    # and the samples are the clip's.
    assert wav[:4] == b"RIFF" and wav[4:8] == b"\xff\xff\xff\xff" and wav[40:44] == wav[4:8]
    samples, rate = pcm_of_wav(unstreamed)
    assert int.from_bytes(wav[24:28], "little") == rate and wav[44:] == samples
    with _speak(server, response_format="pcm", stream_format="sse") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in events.iter_lines() if line.startswith("data: ")]
    sent = [json.loads(line.removeprefix("data: ")) for line in lines]
    assert [e["type"] for e in sent] == ["speech.audio.delta"] * (len(sent) - 1) + [
        "speech.audio.done"
    ]
    assert len(sent) >= 3  # two sentences, two pieces
    assert b"".join(base64.b64decode(e["audio"]) for e in sent[:-1]) == samples
    with server.client("acme") as rest:
        outputs = rest.get("/users/ann/outputs").json()
    assert sent[-1]["pgen"]["output_id"] == outputs[-1]["output_id"]
    assert hold.released == []  # nothing was held here


def test_bad_stream_requests_are_refused_before_any_audio(server: Running) -> None:
    with pytest.raises(openai.BadRequestError, match="stream_format 'video'"):
        _client(server).audio.speech.create(
            model="voice",
            voice="joe",
            input="hi",
            extra_body={"user": "ann", "stream_format": "video"},
        )
    with pytest.raises(openai.BadRequestError, match="response_format 'mp3'"):
        _client(server).audio.speech.create(
            model="voice",
            voice="joe",
            input="hi",
            response_format="mp3",
            stream_format="audio",
            extra_body={"user": "ann"},
        )
    with pytest.raises(openai.NotFoundError):  # another tenant's user: a JSON 404, no stream
        _client(server, "globex").audio.speech.create(
            model="voice",
            voice="joe",
            input="hi",
            stream_format="audio",
            extra_body={"user": "ann"},
        )


class _Whole:
    """A voice synthesizer that can only make whole clips."""

    name = "whole"

    def voices(self) -> list[str]:
        return ["one"]

    def speak(self, text: str, voice: str) -> Audio:
        return Audio(np.full(len(text), 0.5, np.float32), 8000)


def test_a_synthesizer_without_pieces_speaks_in_one(piper: PiperSynthesizer) -> None:
    assert [len(a.samples) for a in spoken_chunks(_Whole(), "four", "one")] == [4]
    pieces = list(spoken_chunks(piper, TEXT, "joe"))
    assert len(pieces) == 2
    joined = np.concatenate([p.samples for p in pieces])
    assert np.array_equal(joined, piper.speak(TEXT, "joe").samples)
