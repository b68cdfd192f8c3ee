"""Video strategies: ``none`` (the instruction alone) and ``subject`` (the user's trained
subject artifact, DreamBooth-LoRA or textual inversion, inside the AnimateDiff pipeline
built from the image model). A stale artifact is refused as it is for images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgen.components import Modality, Provenance, Tools, VideoRequest
from pgen.models.base import AdapterRef
from pgen.personalize.subject import (
    TRAINERS,
    pick_subject,
    subject_adapter,
    subject_phrase,
    subject_prompt,
    trained,
)


@dataclass
class VideoPlan:
    """The clip's prompt, the user's adapter, and the clip's own settings."""

    prompt: str
    frames: int
    fps: int
    seed: int
    motion_adapter: str
    provenance: Provenance = field(default_factory=Provenance)
    adapter: AdapterRef | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _motion(request: VideoRequest) -> str:
    if request.motion_adapter is None:  # the modality's check fills it in
        raise ValueError("video request without a motion adapter (check it first)")
    return request.motion_adapter


def trained_method(tools: Tools, request: VideoRequest) -> tuple[Any, str]:
    """The subject and the method to use: the request's, else the best trained one; a
    subject with no trained artifact is refused (a clip has no IP-Adapter path here)."""
    subject = pick_subject(tools.store, request)
    have = trained(tools.store, request.user_id, subject)
    method = request.method or next((m for m in TRAINERS if m in have), None)
    if method not in TRAINERS:
        raise ValueError(
            f"subject {subject.name!r} of user {request.user_id!r} has no trained artifact "
            f"for video (methods: {', '.join(TRAINERS)}); run: pgen train-subject --user "
            f"{request.user_id} --subject {subject.name}"
            if method is None
            else f"video takes a trained subject method ({', '.join(TRAINERS)}), not {method!r}"
        )
    return subject, str(method)


class VideoBaseline:
    name = "none"
    modality: Modality = "video"
    description = "the instruction alone, animated (the video baseline)"
    retrieves = False
    adapter_kind: str | None = None

    def prepare(self, requests: list[VideoRequest], tools: Tools) -> list[VideoPlan]:
        base = tools.image_model.name
        plans = []
        for r in requests:
            motion = _motion(r)
            provenance = Provenance(artifacts=[motion], model=base)
            details = {"motion_adapter": motion, "frames": r.frames, "fps": r.fps, "seed": r.seed}
            plans.append(
                VideoPlan(r.instruction, r.frames, r.fps, r.seed, motion, provenance, None, details)
            )
        return plans


class VideoSubject:
    name = "subject"
    modality: Modality = "video"
    description = (
        "the user's subject (DreamBooth-LoRA or textual inversion) animated by AnimateDiff"
    )
    retrieves = False
    adapter_kind: str | None = "subject"

    def prepare(self, requests: list[VideoRequest], tools: Tools) -> list[VideoPlan]:
        base = tools.image_model.name
        plans = []
        for r in requests:
            subject, method = trained_method(tools, r)
            adapter, token, provenance = subject_adapter(
                tools.store, r.user_id, subject, method, base
            )
            motion = _motion(r)
            provenance.artifacts.append(motion)
            prompt = subject_prompt(r.instruction, subject, subject_phrase(token, subject))
            details = {
                "method": method,
                "motion_adapter": motion,
                "reference_images": list(subject.image_paths),
                "frames": r.frames,
                "fps": r.fps,
                "seed": r.seed,
            }
            plans.append(
                VideoPlan(prompt, r.frames, r.fps, r.seed, motion, provenance, adapter, details)
            )
        return plans
