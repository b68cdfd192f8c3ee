"""Post strategies: one request, a caption in the user's voice (a text strategy: ``rag``,
``profile``, ``lora+rag`` ...) and an image from their preferences (``keywords``) or
subjects (``subject``). ``joint`` prompts the image from the caption, so the two agree;
``independent`` prompts it from the instruction (the comparison). Both reuse the text and
image strategies as they are; the post executor runs the caption before the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgen.components import (
    ImagePlan,
    ImageRequest,
    Modality,
    PostRequest,
    Provenance,
    TextPlan,
    TextRequest,
    Tools,
    prepare_with_history,
)
from pgen.models.base import AdapterRef
from pgen.models.post import CAPTION
from pgen.personalize.registry import get_strategy
from pgen.personalize.subject import pick_subject

IMAGE_STRATEGIES = ("none", "keywords", "subject")
CAPTION_PROMPT = "Write a short social media post (one or two sentences) about: {}"


@dataclass
class PostPlan:
    caption: TextPlan
    image: ImagePlan
    joint: bool
    seed: int
    provenance: Provenance = field(default_factory=Provenance)
    adapter: AdapterRef | None = None  # each part carries its own
    details: dict[str, Any] = field(default_factory=dict)


def merged(caption: Provenance, image: Provenance) -> Provenance:
    """One provenance for the post: the caption's documents, the image's items, subjects
    and artifacts, the notes of both."""
    return Provenance(
        documents=list(caption.documents),
        items=list(image.items),
        subjects=list(image.subjects),
        artifacts=[*caption.artifacts, *image.artifacts],
        notes=[*caption.notes, *image.notes],
    )


class _Post:
    name = ""
    joint = True
    modality: Modality = "post"
    description = ""
    retrieves = True  # through its caption strategy
    adapter_kind: str | None = None

    def prepare(self, requests: list[PostRequest], tools: Tools) -> list[PostPlan]:
        plans = []
        for r in requests:
            instruction = CAPTION_PROMPT.format(r.instruction)
            text = TextRequest(r.user_id, instruction, r.caption, r.k, r.retriever, r.instruction)
            caption = prepare_with_history(get_strategy("text", r.caption), [text], tools)[0]
            subject = None
            if r.image == "subject":  # named by the request, or mentioned in its instruction
                subject = pick_subject(tools.store, r).name
            prompt = CAPTION if self.joint else r.instruction
            image_request = ImageRequest(r.user_id, prompt, r.image, subject)
            image = get_strategy("image", r.image).prepare([image_request], tools)[0]
            details = {
                "caption_strategy": r.caption,
                "image_strategy": r.image,
                "joint": self.joint,
                "seed": r.seed,
                "caption": {**caption.details, "documents": caption.provenance.documents},
                "image": image.details,
            }
            provenance = merged(caption.provenance, image.provenance)
            plans.append(PostPlan(caption, image, self.joint, r.seed, provenance, None, details))
        return plans


class JointPost(_Post):
    name = "joint"
    joint = True
    description = "a caption in the user's voice, and an image prompted from that caption"


class IndependentPost(_Post):
    name = "independent"
    joint = False
    description = "a caption and an image made apart from the same instruction (comparison)"
