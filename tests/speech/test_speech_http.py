"""Speech over HTTP, driven by the official ``openai`` client against uvicorn on loopback:
``/v1/audio/speech`` speaks for the ``user`` (an extension field: the client's
``extra_body``) in the voice the ``model``'s strategy picks,
``/v1/audio/transcriptions`` transcribes, ``/users/{u}/voice-notes`` keeps a clip as the
user's voice note; bad audio and unknown voices get one-line errors; another tenant's user
is not found."""

from __future__ import annotations

import io
from typing import Any

import openai
import pytest

from pgen.config import Config
from pgen.evaluate.metrics.speech import wer
from pgen.models.speech_audio import read_audio
from tests.serve.server import Running, serve_in_thread
from tests.speech.conftest import NOTE, REFERENCE


@pytest.fixture
def server(config: Config, say: Any) -> Any:
    with serve_in_thread(config) as running, running.client("acme") as rest:
        users = [
            {"type": "user", "user_id": "ann", "profile": {"voice": "joe"}},
            {"type": "document", "user_id": "ann", "doc_id": "d1", "text": "I grow lemons."},
        ]
        assert rest.post("/records", json={"records": users}).status_code == 200
        yield running


def _client(server: Running, tenant: str = "acme") -> openai.OpenAI:
    return openai.OpenAI(api_key=server.keys[tenant], base_url=f"{server.url}/v1", max_retries=0)


def test_audio_speech_speaks_for_the_user_and_saves_the_output(server: Running) -> None:
    text = "The lemons are ripe on the balcony."
    reply = _client(server).audio.speech.create(
        model="pgen/voice", voice="profile", input=text, extra_body={"user": "ann"}
    )
    clip = read_audio(reply.content, "reply.wav", suffix=".wav")
    assert clip.rate == 22050 and clip.seconds > 1.0
    output_id = reply.response.headers["x-pgen-output-id"]
    with server.client("acme") as rest:
        outputs = rest.get("/users/ann/outputs").json()
    assert [(o["output_id"], o["modality"], o["text"]) for o in outputs] == [
        (output_id, "speech", text)
    ]
    heard = _client(server).audio.transcriptions.create(
        model="whisper-1", file=("reply.wav", io.BytesIO(reply.content), "audio/wav")
    )
    assert wer([heard.text], [text]) <= 0.2, heard.text


def test_unknown_voices_models_and_users_are_refused(server: Running) -> None:
    client = _client(server)
    with pytest.raises(openai.UnprocessableEntityError, match="unknown voice 'alloy'"):
        client.audio.speech.create(
            model="voice", voice="alloy", input="hi", extra_body={"user": "ann"}
        )
    with pytest.raises(openai.BadRequestError, match="unknown model 'tts-1'"):
        client.audio.speech.create(
            model="tts-1", voice="joe", input="hi", extra_body={"user": "ann"}
        )
    with pytest.raises(openai.NotFoundError) as unknown:
        client.audio.speech.create(
            model="voice", voice="joe", input="hi", extra_body={"user": "nobody"}
        )
    # Another tenant's user is answered exactly as a user that does not exist.
    with pytest.raises(openai.NotFoundError) as elsewhere:
        _client(server, "globex").audio.speech.create(
            model="voice", voice="joe", input="hi", extra_body={"user": "ann"}
        )
    assert unknown.value.response.text == elsewhere.value.response.text
    with server.client("acme") as rest:
        assert rest.get("/users/ann/outputs").json() == []


def test_transcriptions_and_voice_notes(server: Running, say: Any) -> None:
    data = say(NOTE).read_bytes()
    verbose = _client(server).audio.transcriptions.create(
        model="whisper-1",
        file=("note.wav", io.BytesIO(data), "audio/wav"),
        response_format="verbose_json",
    )
    assert wer([verbose.text], [NOTE]) <= 0.2
    assert verbose.language == "en" and verbose.segments and verbose.segments[0].start == 0.0
    with server.client("acme") as rest:
        bad = rest.post(
            "/v1/audio/transcriptions", files={"file": ("x.wav", b"not audio", "audio/wav")}
        )
        assert bad.status_code == 422 and "not audio" in bad.json()["error"]["message"]
        kept = rest.post(
            "/users/ann/voice-notes",
            files={"file": ("n.wav", data, "audio/wav")},
            data={"doc_id": "n1"},
        )
        assert kept.status_code == 200, kept.text
        assert kept.json()["doc_id"] == "n1" and kept.json()["language"] == "en"
        found = rest.post("/users/ann/search", json={"query": "tomatoes basil", "k": 1})
        assert found.status_code == 200, found.text
        assert "n1" in found.text
        named = {
            "type": "document",
            "user_id": "ann",
            "doc_id": "v9",
            "text": "",
            "fields": {"audio_path": "/etc/passwd"},
        }
        refused = rest.post("/records", json={"records": [named]})
        assert (
            refused.status_code == 422
            and "POST /users/{user}/voice-notes" in refused.json()["error"]["message"]
        )
        odd = rest.post("/users/ann/voice-notes", files={"file": ("n.xyz", data, "audio/x")})
        assert (
            odd.status_code == 422
            and "unsupported audio format '.xyz'" in odd.json()["error"]["message"]
        )
    with server.client("globex") as other:
        assert (
            other.post(
                "/users/ann/voice-notes", files={"file": ("n.wav", data, "audio/wav")}
            ).status_code
            == 404
        )


def test_own_voice_from_uploaded_reference_clips(server: Running, say: Any) -> None:
    with server.client("acme") as rest:
        bad = rest.post(
            "/users/ann/voice-clips", files={"file": ("me.wav", b"not audio", "audio/wav")}
        )
        assert bad.status_code == 422 and "not audio" in bad.json()["error"]["message"]
        clip = rest.post(
            "/users/ann/voice-clips",
            files={"file": ("me.wav", say(REFERENCE).read_bytes(), "audio/wav")},
        )
        assert clip.status_code == 200, clip.text
        subject = {
            "type": "subject",
            "user_id": "ann",
            "name": "me",
            "class_word": "voice",
            "image_paths": [clip.json()["ref"]],
        }
        assert rest.post("/records", json={"records": [subject]}).status_code == 200
    reply = _client(server).audio.speech.create(
        model="own-voice", voice="profile", input="hello there", extra_body={"user": "ann"}
    )
    assert read_audio(reply.content, "own.wav", suffix=".wav").rate == 16000
    with server.client("globex") as other:
        refs = other.post(
            "/users/ann/voice-clips",
            files={"file": ("me.wav", say(REFERENCE).read_bytes(), "audio/wav")},
        )
        assert refs.status_code == 404
