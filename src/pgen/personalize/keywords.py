"""The ``keywords`` strategy, after PMG (Shen et al., 2024, "PMG: Personalized Multimodal
Generation with Large Language Models"): the items a user interacted with are turned by a
text model into preference keywords, and the image is conditioned on a mix of the
instruction (the target) and those keywords (the preference), weighted by ``weight``.

The mix happens in text-encoder space: ``(1 - weight) * E(instruction) + weight *
E(keywords)``, so ``weight`` 0 is the plain instruction and 1 is the preference alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pgen.context.base import ContextStore
from pgen.context.records import Item
from pgen.models.base import Chat, GenerationSettings, Message, TextModel
from pgen.personalize.base import (
    ImagePlan,
    ImageRequest,
    Modality,
    Provenance,
    Tools,
    image_tools,
)

if TYPE_CHECKING:
    from pgen.models.image import DiffusersImageModel, ImageGenerationSettings, ImageOutput


@dataclass(frozen=True)
class KeywordsSettings:
    weight: float = 0.3  # share of the preference in the conditioning
    max_items: int = 20  # most recent interacted items shown to the text model
    max_keywords: int = 8
    item_tokens: int = 48  # each item's text is cut to this many tokens
    min_rating: float | None = None  # skip items the user rated below this
    generation: GenerationSettings = field(
        default_factory=lambda: GenerationSettings(max_new_tokens=48)
    )


@dataclass(frozen=True)
class KeywordsPlan:
    """What the strategy decided before any image is drawn."""

    instruction: str
    keywords: list[str]
    item_ids: list[str]
    weight: float

    @property
    def preference_prompt(self) -> str:
        return ", ".join(self.keywords)

    @property
    def prompt(self) -> str:
        """The instruction and keywords as one text prompt (for the record, and for
        backends that take text only)."""
        return ", ".join([self.instruction, *self.keywords])


def preference_items(store: ContextStore, user_id: str, config: KeywordsSettings) -> list[Item]:
    """The user's most recently interacted distinct items, newest first."""
    chosen: list[str] = []
    for interaction in reversed(store.interactions(user_id)):
        low = (
            config.min_rating is not None
            and interaction.rating is not None
            and interaction.rating < config.min_rating
        )
        if not low and interaction.item_id not in chosen:
            chosen.append(interaction.item_id)
        if len(chosen) == config.max_items:
            break
    found = {item.item_id: item for item in store.items(chosen)}
    return [found[item_id] for item_id in chosen if item_id in found]


def keywords_chat(items: list[Item], model: TextModel, config: KeywordsSettings) -> Chat:
    lines = []
    for item in items:
        text = model.truncate(" ".join(item.text.split()), config.item_tokens)
        lines.append(f"- {item.title or item.item_id}" + (f": {text}" if text else ""))
    return [
        Message("system", "You describe a person's visual taste for an image generator, tersely."),
        Message(
            "user",
            "Items this person liked:\n"
            + "\n".join(lines)
            + f"\n\nGive up to {config.max_keywords} short keywords (styles, colors, themes, "
            "moods) that describe their taste. Answer with the keywords only, separated by "
            "commas.",
        ),
    ]


def parse_keywords(reply: str, limit: int) -> list[str]:
    """Keywords from a reply: split on commas, semicolons and lines; bullets, numbering and
    quotes removed; at most four words each; duplicates dropped."""
    keywords: list[str] = []
    for part in re.split(r"[,;\n]", reply):
        word = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", part)
        word = " ".join(word.strip(" \t\"'`.:").split()[:4]).lower()[:40].strip()
        if word and word not in keywords:
            keywords.append(word)
        if len(keywords) == limit:
            break
    return keywords


def plan_keywords(
    store: ContextStore,
    user_id: str,
    instruction: str,
    text_model: TextModel,
    config: KeywordsSettings | None = None,
) -> KeywordsPlan:
    config = config or KeywordsSettings()
    if not 0.0 <= config.weight <= 1.0:
        raise ValueError(f"keywords weight must be between 0 and 1, got {config.weight}")
    items = preference_items(store, user_id, config)
    keywords: list[str] = []
    if items:
        reply = text_model.generate([keywords_chat(items, text_model, config)], config.generation)
        keywords = parse_keywords(reply[0], config.max_keywords)
    return KeywordsPlan(instruction, keywords, [item.item_id for item in items], config.weight)


class KeywordsStrategy:
    """PMG-style: preference keywords from the items the user interacted with, mixed into
    the conditioning with the request's weight."""

    name = "keywords"
    modality: Modality = "image"
    description = "preference keywords from the user's items, mixed with the instruction (PMG)"
    retrieves = False
    adapter_kind: str | None = None

    def __init__(self, config: KeywordsSettings | None = None) -> None:
        self.config = config or KeywordsSettings()

    def prepare(self, requests: list[ImageRequest], tools: Tools) -> list[ImagePlan]:
        prepared = []
        for request in requests:
            config = replace(self.config, weight=request.keywords_weight)
            plan = plan_keywords(
                tools.store, request.user_id, request.instruction, tools.text_model, config
            )
            provenance = Provenance(items=plan.item_ids, model=tools.image_model.name)
            details: dict[str, Any] = {
                "keywords": plan.keywords,
                "weight": plan.weight,
                "preference_prompt": plan.preference_prompt,
                "text_model": tools.text_model.name,
            }
            # No history, or nothing usable in the reply: the instruction alone.
            blend = (plan.preference_prompt, plan.weight) if plan.keywords else None
            prepared.append(
                ImagePlan(
                    prompt=plan.prompt if blend else request.instruction,
                    provenance=provenance,
                    details=details,
                    instruction=request.instruction,
                    blend=blend,
                )
            )
        return prepared


class ImageBaseline:
    """The instruction alone, for images."""

    name = "none"
    modality: Modality = "image"
    description = "the instruction alone (the image baseline)"
    retrieves = False
    adapter_kind: str | None = None

    def prepare(self, requests: list[ImageRequest], tools: Tools) -> list[ImagePlan]:
        model = tools.image_model.name
        return [
            ImagePlan(prompt=r.instruction, provenance=Provenance(model=model)) for r in requests
        ]


def generate_keywords(
    store: ContextStore,
    user_id: str,
    instruction: str,
    text_model: TextModel,
    image_model: DiffusersImageModel,
    image_config: ImageGenerationSettings | None = None,
    config: KeywordsSettings | None = None,
) -> ImageOutput:
    """Images for the instruction, leaning toward the user's inferred taste, outside an
    engine: the same strategy and rendering as ``Engine.generate_image``."""
    from pgen.models.image import ImageOutput

    config = config or KeywordsSettings()
    tools = image_tools(store, image_model, lambda: text_model)
    request = ImageRequest(user_id, instruction, "keywords", keywords_weight=config.weight)
    prepared = KeywordsStrategy(config).prepare([request], tools)[0]
    from pgen.models.executors import render_plan

    images = render_plan(image_model, prepared, image_config)
    provenance = {
        **prepared.provenance.as_dict(),
        **prepared.details,
        "base_model": image_model.name,
    }
    return ImageOutput(images, prepared.prompt, "keywords", provenance)
