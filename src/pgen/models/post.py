"""The post executor: a caption from the text model, then an image from the image model
prompted from that caption (``joint``) or from the instruction (``independent``); one
``Executed`` with the caption as its text and the image as its media."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from pgen.models.base import (
    BASE_ADAPTER,
    GenerationSettings,
    ImageGenerationSettings,
    TextModel,
    TextSink,
)
from pgen.models.executors import ChatPlan, Executed, execute_text, render_plan

if TYPE_CHECKING:
    from pgen.models.image import DiffusersImageModel

CAPTION = "{caption}"  # where the caption goes in a joint post's image prompt


@dataclass(frozen=True)
class PostModels:
    text: TextModel
    image: DiffusersImageModel


@dataclass(frozen=True)
class PostSettings:
    generation: GenerationSettings
    sampling: ImageGenerationSettings | None = None


class PostPlanShape(Protocol):
    caption: ChatPlan
    image: Any  # a PromptPlan whose prompt may hold the CAPTION slot
    joint: bool
    seed: int
    details: dict[str, Any]


def image_prompt(template: str | None, caption: str) -> str | None:
    """The image prompt with the caption in its slot (one line: CLIP reads prompts as one)."""
    if template is None:
        return None
    return template.replace(CAPTION, " ".join(caption.split()))


def execute_post(
    models: PostModels,
    plans: Sequence[PostPlanShape],
    settings: PostSettings | Any,
    sinks: Sequence[TextSink | None] | None = None,
) -> list[Executed]:
    """Captions first (one text batch, streamed to ``sinks``), then each image, one at a
    time (an image must not depend on its batch mates)."""
    if not isinstance(settings, PostSettings):
        settings = PostSettings(GenerationSettings())
    captions = execute_text(models.text, [p.caption for p in plans], settings.generation, sinks)
    done = []
    for plan, caption in zip(plans, captions, strict=True):
        image: Any = plan.image
        if plan.joint:
            filled = image_prompt(image.prompt, caption.text) or caption.text
            instruction = image_prompt(image.instruction, caption.text)
            image = replace(image, prompt=filled, instruction=instruction)
        plan.details["image_prompt"] = image.prompt  # what the record shows
        sampling = replace(settings.sampling or ImageGenerationSettings(), seed=plan.seed)
        images = render_plan(models.image, image, sampling)
        applied = image.adapter.name if image.adapter else BASE_ADAPTER
        model = f"{caption.model} | {models.image.name}+{applied}"
        done.append(Executed(caption.text, model, images))
    return done
