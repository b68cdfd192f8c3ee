"""Audio in and out for the speech models: one mono float waveform type, read from a file or
uploaded bytes (checked to be audio, of a format we read, and not too long), resampled for a
model, and written as 16-bit PCM WAV (the one format outputs are saved in).

WAV is read with the standard library; other containers (FLAC, MP3, Ogg, M4A, WebM) are
decoded with PyAV, which faster-whisper brings (extra ``speech``). Anything else is refused
with one line naming the file and what was expected, before any model loads.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_SECONDS = 600.0  # a voice note or reference clip longer than this is refused
WAV_SUFFIXES = (".wav", ".wave")
DECODED_SUFFIXES = (".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".webm")
SUFFIXES = WAV_SUFFIXES + DECODED_SUFFIXES


class AudioError(ValueError):
    """An input that is not audio we can use: one line, naming the source."""


@dataclass(frozen=True)
class Audio:
    """Mono samples in [-1, 1] at ``rate`` Hz. Saved with the output's media as WAV."""

    samples: np.ndarray
    rate: int

    suffix = ".wav"  # the file type of an output's media (generation saves by it)
    media_kind = "speech"  # the artifact kind a generated clip is saved under

    @property
    def seconds(self) -> float:
        return len(self.samples) / float(self.rate)

    def resampled(self, rate: int) -> Audio:
        return Audio(resample(self.samples, self.rate, rate), rate)

    def pcm_bytes(self) -> bytes:
        """16-bit little-endian mono samples (what a WAV file holds after its header). Per
        sample, so the pieces of a clip converted apart join into the clip's bytes."""
        return (np.clip(self.samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()

    def wav_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(self.rate)
            out.writeframes(self.pcm_bytes())
        return buffer.getvalue()

    def save(self, path: Path) -> None:
        partial = path.with_suffix(".part")
        partial.write_bytes(self.wav_bytes())
        partial.replace(path)  # a crash leaves no half clip under the real name


def resample(samples: np.ndarray, source: int, target: int) -> np.ndarray:
    """Band-limited resampling (FFT): enough for speech models, no extra dependency."""
    if source == target or len(samples) == 0:
        return samples.astype(np.float32)
    count = max(1, round(len(samples) * target / source))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    keep = count // 2 + 1
    if keep <= len(spectrum):
        spectrum = spectrum[:keep]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(keep - len(spectrum), spectrum.dtype)])
    return (np.fft.irfft(spectrum, count) * (count / len(samples))).astype(np.float32)


def _from_wav(data: bytes, source: str) -> Audio:
    try:
        with wave.open(io.BytesIO(data), "rb") as clip:
            width, channels = clip.getsampwidth(), clip.getnchannels()
            rate, frames = clip.getframerate(), clip.readframes(clip.getnframes())
    except (wave.Error, EOFError) as error:
        raise AudioError(f"{source}: not a readable WAV file ({error})") from None
    kinds = {1: np.uint8, 2: np.int16, 4: np.int32}
    if width not in kinds or rate <= 0 or channels < 1:
        raise AudioError(
            f"{source}: unsupported WAV encoding ({width * 8}-bit); expected 8, 16 or 32-bit PCM"
        )
    pcm = np.frombuffer(frames[: len(frames) - len(frames) % (width * channels)], kinds[width])
    values = pcm.astype(np.float32)
    values = (values - 128.0) / 128.0 if width == 1 else values / float(2 ** (8 * width - 1))
    return Audio(values.reshape(-1, channels).mean(axis=1), rate)


def _decoded(data: bytes, source: str) -> Audio:
    try:
        import av
    except ImportError:
        raise AudioError(
            f"{source}: only WAV is read without the speech extra (pip install 'pgen[speech]')"
        ) from None
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioError(f"{source}: has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
            parts = []
            for frame in container.decode(stream):
                for chunk in resampler.resample(frame):
                    parts.append(chunk.to_ndarray().reshape(-1))
    except AudioError:
        raise
    except Exception as error:  # PyAV's errors are many classes: all mean "not audio"
        raise AudioError(
            f"{source}: not audio that can be decoded ({type(error).__name__})"
        ) from None
    if not parts:
        raise AudioError(f"{source}: has no audio samples")
    return Audio(np.concatenate(parts).astype(np.float32), 16000)


def read_audio(
    data: bytes, source: str, *, suffix: str | None = None, max_seconds: float = MAX_SECONDS
) -> Audio:
    """Audio from bytes (a file's or an upload's); ``source`` names it in errors."""
    kind = (suffix or "").lower()
    if kind and kind not in SUFFIXES:
        raise AudioError(
            f"{source}: unsupported audio format {kind!r}; expected one of {', '.join(SUFFIXES)}"
        )
    if not data:
        raise AudioError(f"{source}: the file is empty")
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        audio = _from_wav(data, source)
    elif kind in WAV_SUFFIXES:
        raise AudioError(f"{source}: not audio (no RIFF/WAVE header)")
    else:
        audio = _decoded(data, source)
    if len(audio.samples) == 0:
        raise AudioError(f"{source}: has no audio samples")
    if audio.seconds > max_seconds:
        raise AudioError(
            f"{source}: too long ({audio.seconds:.0f} s); at most {max_seconds:.0f} s is accepted"
        )
    return audio


def load_audio(path: str | Path, *, max_seconds: float = MAX_SECONDS) -> Audio:
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as error:
        raise AudioError(f"{file}: cannot read ({error.strerror})") from None
    return read_audio(data, str(file), suffix=file.suffix, max_seconds=max_seconds)
