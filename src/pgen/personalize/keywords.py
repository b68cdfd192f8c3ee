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


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SYSTEM = "You describe a person's visual taste for an image generator, tersely."
# The words of the instructions above, without the items: a reply that starts by echoing
# them ("This person's visual taste is ...", "Here are 8 keywords:") is cut back to what
# follows. Kept in step with the chat by test (tests/image/test_keywords_parse.py).
PROMPT_WORDS = _words(
    "you describe a person's visual taste for an image generator tersely items this person "
    "liked give up to short keywords keyword styles colors themes moods that their answer "
    "with the only separated by commas"
)
# Words that carry no taste of their own: cut from both ends of a keyword (a truncated
# "... the person's taste is" leaves nothing), and, with the prompt's words, from its start.
FILLER = _words(
    "a an the and or but of in on at to for with by as is are was were be been being it its "
    "they them their he she his her i my me we our your this these those here there some "
    "such which who whom also very so overall mostly mainly generally seems seem appears "
    "appear tends tend has have having includes include including like likes love loves "
    "enjoy enjoys prefer prefers leans lean towards toward mix blend combination range "
    "described characterized defined focus focused person persons person's people's "
    "taste tastes keyword keywords based following list"
)
MAX_KEYWORD_WORDS = 5  # longer parts are prose ("they are a master of blending ..."), dropped


def keywords_chat(items: list[Item], model: TextModel, config: KeywordsSettings) -> Chat:
    lines = []
    for item in items:
        text = model.truncate(" ".join(item.text.split()), config.item_tokens)
        lines.append(f"- {item.title or item.item_id}" + (f": {text}" if text else ""))
    return [
        Message("system", _SYSTEM),
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
    """Keywords from a reply: split on commas, semicolons, colons, lines and sentence ends;
    bullets, numbering and quotes removed; a lead-in echoing the prompt ("This person's
    visual taste is a mix of ...", "Here are 8 keywords:") and filler at either end cut;
    parts of more than ``MAX_KEYWORD_WORDS`` words (prose) and duplicates dropped."""
    keywords: list[str] = []
    for part in re.split(r"[,;:\n]|(?<=[.!?])\s+", reply.replace("\u2019", "'")):
        part = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", part)
        words = [w.strip(".!?()[]") for w in re.sub(r"[\"`\u201c\u201d]", " ", part).split()]
        words = [w for w in (w.lower().strip("'") for w in words) if w]
        while words and (words[0] in FILLER or words[0] in PROMPT_WORDS or words[0].isdigit()):
            words.pop(0)
        while words and words[-1] in FILLER:
            words.pop()
        word = " ".join(words)
        if word and len(words) <= MAX_KEYWORD_WORDS and len(word) <= 40 and word not in keywords:
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
