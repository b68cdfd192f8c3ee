"""One executor per built-in modality: a batch of plans in, one ``Executed`` per plan out.

An executor is the only place a modality's model is called for generation. It reads the
model input of each plan (a chat, an image prompt, a vision chat) and the user's adapter,
applied to that plan's row only. Plans are read by their shape (the protocols below), so
this layer needs nothing from the strategies above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pgen.models.base import BASE_ADAPTER, AdapterRef, Chat, GenerationSettings, TextModel, TextSink
from pgen.models.deltas import generate_to_sinks

if TYPE_CHECKING:
    from PIL import Image

    from pgen.models.image import DiffusersImageModel, ImageGenerationSettings
    from pgen.models.vision import VisionChat, VisionLanguageModel


@dataclass
class Executed:
    """What the model made for one plan: its text, the backend (and adapter) that made it,
    and media to be saved with the output (images, other files)."""

    text: str
    model: str
    images: list[Any] = field(default_factory=list)  # PIL images
    # Other media (a video clip): each has a ``suffix`` and ``save(path)`` (see ``Media``).
    files: list[Any] = field(default_factory=list)


class Media(Protocol):
    """A generated file that is not an image: saved under the output's media folder."""

    @property
    def suffix(self) -> str: ...

    def save(self, path: Path) -> None: ...


class ChatPlan(Protocol):
    chat: Chat
    adapter: AdapterRef | None


class PromptPlan(Protocol):
    prompt: str
    adapter: AdapterRef | None
    instruction: str | None
    blend: tuple[str, float] | None


class VisionChatPlan(Protocol):
    chat: VisionChat
    soft_tokens: Any


def execute_text(
    model: TextModel,
    plans: Sequence[ChatPlan],
    settings: GenerationSettings,
    sinks: Sequence[TextSink | None] | None = None,
) -> list[Executed]:
    """One batch whatever the users' adapters: the backend applies each to its row only.
    ``sinks[i]`` receives plan i's reply as it is decoded."""
    adapters = [p.adapter for p in plans]
    texts = generate_to_sinks(
        model, [p.chat for p in plans], settings, adapters if any(adapters) else None, sinks
    )
    return [
        Executed(text, f"{model.name}+{plan.adapter.name if plan.adapter else BASE_ADAPTER}")
        for plan, text in zip(plans, texts, strict=True)
    ]


def render_plan(
    model: DiffusersImageModel, plan: PromptPlan, config: ImageGenerationSettings | None
) -> list[Image.Image]:
    """The images of one plan: its prompt (or, when it blends a preference into the
    conditioning, the instruction and the preference) with its adapter applied for this
    request only."""
    prompt = plan.instruction if plan.blend and plan.instruction else plan.prompt
    if plan.adapter is not None and plan.adapter.kind == "subjects":  # several subjects
        from pgen.models.regions import render_subjects

        spec = plan.adapter.settings
        return render_subjects(
            model, prompt, spec["regions"], spec["weights"], spec["method"], config
        )
    return model.render(prompt, config, plan.adapter, plan.blend)


def execute_image(
    model: DiffusersImageModel,
    plans: Sequence[PromptPlan],
    settings: ImageGenerationSettings | None,
    sinks: Sequence[TextSink | None] | None = None,
) -> list[Executed]:
    """One plan at a time: an image must not depend on its batch mates. The output's text
    is the prompt the image model was given."""
    return [Executed(plan.prompt, model.name, render_plan(model, plan, settings)) for plan in plans]


def execute_vision(
    model: VisionLanguageModel | None,
    plans: Sequence[VisionChatPlan],
    settings: GenerationSettings,
    sinks: Sequence[TextSink | None] | None = None,
) -> list[Executed]:
    """Answers about photos; a plan with soft tokens (learned concept tokens) needs a
    transformers model, which takes input vectors (a server does not). Without a model
    (none configured), the answer is the concepts the plan recognized, with their scores."""
    if model is None:  # no VLM configured: the concepts recognized are still an answer
        results = [Executed(concepts_report(plan), NO_VLM_MODEL) for plan in plans]
        for sink, done in zip(sinks or (), results, strict=False):
            if sink is not None:
                sink(done.text)
        return results
    results = []
    for plan in plans:  # one photo per call: a VLM batch pads images into each other's cost
        if plan.soft_tokens is not None:
            text = soft_token_model(model).generate([plan.chat], settings, [plan.soft_tokens])[0]
        else:
            text = model.generate([plan.chat], settings)[0]
        results.append(Executed(text, model.name))
    for sink, done in zip(sinks or (), results, strict=False):
        if sink is not None:
            sink(done.text)
    return results


NO_VLM_MODEL = "no-vlm"
NO_VLM = (
    "No vision-language model is configured: a VLM would describe the scene (give "
    "--vision-model, an HF id, a folder or openai:MODEL@URL, or set vision_model / "
    "PGEN_VISION_MODEL)."
)


def concepts_report(plan: Any) -> str:
    """The answer without a VLM: the user's concepts recognized in the photo (and the
    nearest ones that were not), with their scores, from the plan's concept details."""
    concepts = getattr(plan, "details", {}).get("concepts")
    if concepts is None:
        raise ValueError(
            f"{NO_VLM} Without one, only the concepts strategy answers (the user's concepts "
            "recognized in the photo, with their scores)."
        )
    recognized = [c for c in concepts if c["accepted"]]
    others = [c for c in concepts if not c["accepted"]]

    def shown(c: dict[str, Any]) -> str:
        return f"{c['name']} (confidence {c['confidence']:.2f}, similarity {c['score']:.3f})"

    lines = [
        "Recognized in this photo: " + ", ".join(map(shown, recognized))
        if recognized
        else "None of your concepts is recognized in this photo."
    ]
    if others:
        lines.append("Not recognized: " + ", ".join(map(shown, others)))
    faces = plan.details.get("faces")
    if faces is not None:  # the user's people, recognized by face
        people = ", ".join(
            f"{p['name']} ({p['position']}, confidence {p['confidence']:.2f})"
            for p in plan.details.get("people", [])
        )
        lines.append(
            f"Faces: {faces['found']} found; your people: {people or 'none recognized'}"
            + (f"; {faces['unnamed']} not one of your people" if faces["unnamed"] else "")
        )
    lines.append(NO_VLM)
    return "\n".join(lines)


def soft_token_model(model: VisionLanguageModel | None) -> Any:
    from pgen.models.vision import TransformersVisionModel

    if model is None:
        raise ValueError(f"{NO_VLM} Concept tokens need a transformers one.")
    if not isinstance(model, TransformersVisionModel):
        raise ValueError(
            f"concept tokens need a transformers vision model, not {model.name} "
            "(a server takes no input vectors)"
        )
    return model
