"""Speech strategies: what the user hears, and in whose voice.

The words are a text strategy's answer (``text_strategy``: ``rag``, ``profile``, ...; the
text modality generates it) or, with ``text_strategy=""``, the instruction itself (the
OpenAI-compatible ``/v1/audio/speech`` speaks its ``input``). The voice:

* ``voice``: the voice the user chose, held in their profile (``profile.voice``), or one
  named in the request; a named voice of the configured synthesizer (Piper's ``joe``);
* ``own-voice``: the user's own voice, zero-shot: a speaker embedding of the reference clips
  of their ``voice`` subject conditions a speaker-conditioned TTS (SpeechT5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pgen.components import Provenance, TextRequest
from pgen.context.base import ContextStore
from pgen.context.records import Subject
from pgen.models.base import AdapterRef

VOICE_SUBJECT = "voice"  # the class word of a subject whose references are voice clips
PROFILE_VOICE = "voice"  # the profile attribute naming the user's chosen voice


@dataclass(frozen=True)
class SpeechRequest:
    """One user asking to hear something. ``voice``: a named voice instead of the
    profile's; ``subject``: which of the user's voice subjects ``own-voice`` speaks as."""

    user_id: str
    instruction: str
    strategy: str = "voice"
    text_strategy: str = "rag"  # "": speak the instruction as it is
    k: int = 4
    retriever: str = "bm25"
    voice: str | None = None
    subject: str | None = None


@dataclass
class SpeechPlan:
    text: str
    voice: str | None = None
    speaker: np.ndarray | None = None
    provenance: Provenance = field(default_factory=Provenance)
    adapter: AdapterRef | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SpeechTools:
    """What speech strategies get: the store, the text modality's answers (words and
    provenance per request), the synthesizer's voices and the user's speaker embedding."""

    store: ContextStore
    answer: Callable[[list[TextRequest]], list[tuple[str, Provenance]]]
    voices: Callable[[], list[str]]
    speaker: Callable[[str, Subject], tuple[np.ndarray, str]]  # the vector, its artifact


def words(requests: list[SpeechRequest], tools: SpeechTools) -> list[tuple[str, Provenance]]:
    """What each request speaks: its text strategy's answer, or its instruction."""
    spoken: dict[int, tuple[str, Provenance]] = {}
    asked = [i for i, r in enumerate(requests) if r.text_strategy]
    for i, r in enumerate(requests):
        if not r.text_strategy:
            spoken[i] = (r.instruction, Provenance(notes=["the instruction, spoken as given"]))
    if asked:
        text_requests = [
            TextRequest(
                requests[i].user_id,
                requests[i].instruction,
                requests[i].text_strategy,
                requests[i].k,
                requests[i].retriever,
            )
            for i in asked
        ]
        spoken.update(zip(asked, tools.answer(text_requests), strict=True))
    return [spoken[i] for i in range(len(requests))]


def chosen_voice(store: ContextStore, request: SpeechRequest, voices: list[str]) -> tuple[str, str]:
    """The voice and where it came from; an unknown voice is refused with the known ones."""
    if request.voice:
        voice, source = request.voice, "the request"
    else:
        profile = store.user(request.user_id).profile.get(PROFILE_VOICE)
        if isinstance(profile, str) and profile:
            voice, source = profile, "the user's profile"
        elif voices:
            voice, source = voices[0], "the default (no voice in the user's profile)"
        else:
            raise ValueError("the speech model has no named voices")
    if voice not in voices:
        raise ValueError(
            f"unknown voice {voice!r} (from {source}); choose from {', '.join(voices) or 'none'}"
        )
    return voice, source


def voice_subject(store: ContextStore, request: SpeechRequest) -> Subject:
    """The user's voice subject: the one named, or their only one."""
    mine = [s for s in store.subjects(request.user_id) if s.class_word == VOICE_SUBJECT]
    if request.subject is not None:
        mine = [s for s in mine if s.name == request.subject]
    if len(mine) == 1:
        return mine[0]
    if not mine:
        named = f" named {request.subject!r}" if request.subject else ""
        raise ValueError(
            f"user {request.user_id!r} has no voice subject{named} (a subject with "
            f"class_word 'voice' and reference clips) for own-voice"
        )
    names = ", ".join(s.name for s in mine)
    raise ValueError(f"user {request.user_id!r} has several voice subjects ({names}): name one")


class ChosenVoice:
    name = "voice"
    modality = "speech"
    description = "the answer spoken in the voice the user chose (profile 'voice'; Piper offline)"
    retrieves = True
    adapter_kind: str | None = None

    def prepare(self, requests: list[SpeechRequest], tools: SpeechTools) -> list[SpeechPlan]:
        voices = tools.voices()
        plans = []
        for request, (text, provenance) in zip(requests, words(requests, tools), strict=True):
            voice, source = chosen_voice(tools.store, request, voices)
            provenance.notes.append(f"voice {voice!r} from {source}")
            details = {"voice": voice, "text_strategy": request.text_strategy}
            plans.append(SpeechPlan(text, voice, None, provenance, details=details))
        return plans


class OwnVoice:
    name = "own-voice"
    modality = "speech"
    description = "the answer spoken in the user's own voice, zero-shot from their reference clips"
    retrieves = True
    adapter_kind: str | None = None

    def prepare(self, requests: list[SpeechRequest], tools: SpeechTools) -> list[SpeechPlan]:
        plans = []
        for request, (text, provenance) in zip(requests, words(requests, tools), strict=True):
            subject = voice_subject(tools.store, request)
            speaker, artifact = tools.speaker(request.user_id, subject)
            provenance.subjects.append(subject.name)
            provenance.artifacts.append(artifact)
            details = {
                "subject": subject.name,
                "references": len(subject.image_paths),
                "text_strategy": request.text_strategy,
            }
            plans.append(SpeechPlan(text, None, speaker, provenance, details=details))
        return plans
