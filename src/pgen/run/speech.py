"""The ``speech`` modality, registered through the modality contract: ``SpeechRequest`` →
a speech strategy (``voice``, ``own-voice``; ``pgen.personalize.speech``) → ``SpeechPlan``
(the words, from the text modality, and the voice) → ``pgen.models.tts.execute_speech``
on the ``speech`` component → one output whose media is the WAV clip.

The user's speaker embedding (``own-voice``) is an artifact of theirs (kind
``speaker-embeddings``, one folder per voice subject, with the fingerprint of the clips and
the encoder it came from), recomputed when either changes and removed by delete-user.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pgen.components import Provenance, TextRequest
from pgen.config import GenerationSettings
from pgen.context.artifacts import ArtifactMeta, files_fingerprint, read_meta, write_meta
from pgen.context.base import ContextStore
from pgen.context.records import Subject
from pgen.errors import InvalidRequest
from pgen.models.executors import Executed
from pgen.models.speech_audio import AudioError, load_audio
from pgen.models.tts import MAX_TEXT, SpeechModels, execute_speech
from pgen.personalize.registry import get_strategy
from pgen.personalize.speech import (
    SpeechPlan,
    SpeechRequest,
    SpeechTools,
    chosen_voice,
    voice_subject,
)
from pgen.results import Generation

if TYPE_CHECKING:  # pgen.run.modalities imports this module at its end: no cycle at import
    from pgen.run.modalities import Finished, Workbench

SPEAKER_EMBEDDINGS = "speaker-embeddings"
EMBEDDING_FILE = "speaker.npy"


def speaker_embedding(
    store: ContextStore, models: SpeechModels, user_id: str, subject: Subject
) -> tuple[np.ndarray, str]:
    """The mean x-vector of the subject's reference clips (unit length), cached as the
    user's artifact; recomputed when the clips or the encoder change."""
    encoder = models.speaker_encoder()
    try:
        stamp = files_fingerprint(subject.image_paths)
    except OSError as error:
        raise InvalidRequest(f"voice subject {subject.name!r}: {error}") from None
    folder = store.artifacts(user_id).get((SPEAKER_EMBEDDINGS, subject.name))
    if folder is not None and (folder / EMBEDDING_FILE).is_file():
        meta = read_meta(folder)
        if meta is not None and meta.stale_reason(encoder.name, stamp) is None:
            return np.load(folder / EMBEDDING_FILE), str(folder)
    try:
        clips = [load_audio(path) for path in subject.image_paths]
    except AudioError as error:
        raise InvalidRequest(f"voice subject {subject.name!r}: {error}") from None
    rows = encoder.embed(clips)
    mean = rows.mean(axis=0)
    vector = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    folder = store.artifact_path(user_id, SPEAKER_EMBEDDINGS, subject.name)
    np.save(folder / EMBEDDING_FILE, vector)
    meta = ArtifactMeta(SPEAKER_EMBEDDINGS, user_id, subject.name, encoder.name, stamp)
    write_meta(folder, replace(meta, extra={"clips": len(clips)}))
    return vector, str(folder)


def _answer(bench: Workbench, settings: GenerationSettings) -> Any:
    def answer(requests: list[TextRequest]) -> list[tuple[str, Provenance]]:
        from pgen.run.modalities import get_modality

        text = get_modality("text")
        tools = text.tools(bench, settings)
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.strategy, []).append(index)
        done: dict[int, tuple[str, Provenance]] = {}
        for name, indexes in groups.items():
            chosen = [requests[i] for i in indexes]
            plans = text.prepare(get_strategy("text", name), chosen, tools)
            made = text.execute(bench.load("text"), plans, settings, None)
            for i, plan, out in zip(indexes, plans, made, strict=True):
                plan.provenance.model = out.model
                plan.provenance.notes.append(f"words by the text strategy {name!r} ({out.model})")
                done[i] = (out.text, plan.provenance)
        return [done[i] for i in range(len(requests))]

    return answer


def _tools(bench: Workbench, settings: GenerationSettings) -> SpeechTools:
    def models() -> SpeechModels:
        loaded: SpeechModels = bench.load("speech")
        return loaded

    def speaker(user_id: str, subject: Subject) -> tuple[np.ndarray, str]:
        return speaker_embedding(bench.store, models(), user_id, subject)

    return SpeechTools(bench.store, _answer(bench, settings), lambda: models().voices(), speaker)


def _check(bench: Workbench, request: SpeechRequest) -> SpeechRequest:
    """The words' strategy, the voice or the voice subject: refused before a model loads
    (the voice list needs the synthesizer's names only)."""
    try:
        if request.text_strategy:
            get_strategy("text", request.text_strategy)
        elif len(request.instruction) > MAX_TEXT:
            raise ValueError(
                f"text to speak is {len(request.instruction)} characters; at most {MAX_TEXT}"
            )
        if request.strategy == "voice":
            chosen_voice(bench.store, request, bench.load("speech").voices())
        elif request.strategy == "own-voice":
            voice_subject(bench.store, request)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None
    return request


def _record(
    bench: Workbench, request: SpeechRequest, plan: SpeechPlan, executed: Executed
) -> dict[str, Any]:
    clip = executed.files[0]
    details = {**plan.details, "seconds": round(clip.seconds, 3), "sample_rate": clip.rate}
    return {**plan.provenance.as_dict(), "details": details}


def _result(done: Finished) -> Generation:
    plan, request = done.plan, done.request
    return Generation(
        output_id=done.output_id,
        user_id=request.user_id,
        strategy=request.strategy,
        text=done.executed.text,
        provenance=plan.provenance,
        prompt=[],
        details=done.record["details"],
        modality=done.modality,
        media=done.media,
    )


def register_speech() -> None:
    from pgen.run.modalities import ModalitySpec, modality_names, register_modality

    if "speech" in modality_names():
        return
    register_modality(
        ModalitySpec(
            "speech",
            SpeechRequest,
            "speech",
            GenerationSettings,
            execute_speech,
            tools=_tools,
            check=_check,
            record=_record,
            result=_result,
            batch_size=4,
        )
    )


def audio_file(media: list[Path]) -> Path:
    wavs = [p for p in media if p.suffix == ".wav"]
    if not wavs:
        raise InvalidRequest("this output has no audio")
    return wavs[0]
