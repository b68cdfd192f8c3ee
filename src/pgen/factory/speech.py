"""The speech roles: ``asr`` (config ``asr_model``: voice notes' transcripts) and ``speech``
(config ``speech_model``: the speech modality's synthesizers and speaker encoder), their
config strings and their providers. Model stacks import inside the builders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgen.config import Config
from pgen.factory.specs import _SPECS, ComponentSpec, _openai, _table


def asr_spec(value: str | Mapping[str, Any]) -> ComponentSpec:
    """``tiny.en`` / ``base`` or a CTranslate2 folder (faster-whisper), a transformers
    Whisper id or folder, or ``openai:MODEL@URL``."""
    if isinstance(value, Mapping):
        return _table("asr_model", value)
    if value.startswith("openai:"):
        return _openai("asr_model", value)
    return ComponentSpec("whisper", {"model": value})


def speech_spec(value: str | Mapping[str, Any]) -> ComponentSpec:
    """``piper`` (the offline voice), or a table: ``{provider = "local", settings = {voices =
    FOLDER, clone = ID, vocoder = ID, speaker_encoder = ID}}``."""
    if isinstance(value, Mapping):
        return _table("speech_model", value)
    if value != "piper":
        raise ValueError(
            f"speech_model: expected 'piper' or a table {{provider, settings}}, got {value!r}"
        )
    return ComponentSpec("local")


def _whisper(config: Config, /, model: str, **_: Any) -> Any:
    from pgen.factory import check_local_model
    from pgen.models.asr import OFFLINE_WHISPER, load_recognizer

    if model not in OFFLINE_WHISPER:
        check_local_model("asr_model", model)
    return load_recognizer(
        model, config.model_cache, threads=config.torch_threads, device=config.device
    )


def _openai_asr(config: Config, /, model: str, base_url: str, **_: Any) -> Any:
    from pgen.models.asr import OpenAIRecognizer

    return OpenAIRecognizer(base_url, model)


def _local_speech(
    config: Config,
    /,
    voices: str | None = None,
    clone: str | None = None,
    vocoder: str = "microsoft/speecht5_hifigan",
    speaker_encoder: str | None = None,
    voice_backend: str = "piper",
    **options: Any,
) -> Any:
    """Piper's named voices (or SpeechT5's ``NAME.npy`` voices, ``voice_backend =
    "speecht5"``), SpeechT5 for own-voice when ``clone`` is given, an x-vector encoder when
    ``speaker_encoder`` is: each loads on first use."""
    from pgen.factory import Lazy
    from pgen.models.speech_speaker import XVectorEncoder
    from pgen.models.tts import PiperSynthesizer, SpeechModels, SpeechT5Synthesizer

    device = config.device

    def t5() -> SpeechT5Synthesizer:
        assert clone is not None
        return SpeechT5Synthesizer(clone, vocoder, voices=voices, device=device, **options)

    def xvector() -> XVectorEncoder:
        return XVectorEncoder(str(speaker_encoder), device=device)

    conditioned: Any = Lazy[SpeechT5Synthesizer](t5) if clone else None
    if voice_backend == "speecht5":
        voice: Any = conditioned
    else:
        voice = Lazy[PiperSynthesizer](lambda: PiperSynthesizer(voices))
    encoder: Any = Lazy[XVectorEncoder](xvector) if speaker_encoder else None
    return SpeechModels(voice, conditioned, encoder)


def register() -> None:
    from pgen.factory import register_provider, register_role

    register_role("asr", "asr_model")
    register_role("speech", "speech_model")
    _SPECS.setdefault("asr", asr_spec)
    _SPECS.setdefault("speech", speech_spec)
    register_provider("asr", "whisper", _whisper)
    register_provider("asr", "openai", _openai_asr)
    register_provider("speech", "local", _local_speech)
