"""Strategies for requests that carry an image: the VLM alone, or with the user's concepts.

They follow the one strategy contract (``name``, ``modality``, ``description``,
``prepare(requests, tools)``) with the ``vision`` modality: the model input is a chat whose
messages carry images, and provenance uses the shared ``Provenance`` shape (the concepts
that entered the prompt are its ``subjects``).

``concepts`` is retrieval-augmented personalization (RAP): the user's concepts most
similar to the photo that pass their calibrated decision go into the prompt, each as one
reference image, its name, class word and description, so the model can call Rex "Rex".
When none passes, the prompt says so: "is Rex in this photo?" then has a grounded "no".
The user's people (subjects of class ``person``) are recognized by face, every face of the
photo checked: the prompt names them with where they stand ("Anna (left)"), and counts the
other faces without naming them.
"""

from __future__ import annotations

from dataclasses import asdict

from PIL import Image

from pgen.components import AnswerRequest, Modality, Provenance, VisionPlan, VisionTools
from pgen.models.image_input import open_image
from pgen.models.vision import VisionChat, VisionMessage
from pgen.usermodel.concepts import Match, introduction

SYSTEM = "You are the user's personal assistant. Answer about the photo the user shows you."


class NoConcepts:
    name = "none"
    modality: Modality = "vision"
    description = "the vision-language model alone (the baseline)"
    retrieves = False
    adapter_kind: str | None = None

    def prepare(self, requests: list[AnswerRequest], tools: VisionTools) -> list[VisionPlan]:
        return [VisionPlan(vision_chat(SYSTEM, r.instruction, r.image)) for r in requests]


def vision_chat(system: str, text: str, *images: Image.Image) -> VisionChat:
    """The system message, then the user's turn with its images (the user's photo last)."""
    return [VisionMessage("system", system), VisionMessage("user", text, images)]


def concept_prompt(
    matches: list[tuple[Match, str, str]], instruction: str, people: str = ""
) -> str:
    """The user's turn: who the reference images are, then the question about the last
    (``people``: the line naming the user's people recognized by face, if any)."""
    if not matches:
        none = "None of the user's personal concepts is recognized in this photo."
        return "\n".join(line for line in (none, people, instruction) if line)
    lines = ["The user's personal concepts, one reference image each, in order:"]
    for i, (match, class_word, description) in enumerate(matches, start=1):
        about = f" {description.strip()}" if description.strip() else ""
        lines.append(f"Image {i}: <{match.name}> is the user's {class_word}.{about}")
    lines.append(
        f"Image {len(matches) + 1} is the user's photo. Call the concepts by their names "
        "when they appear in it."
    )
    if people:
        lines.append(people)
    lines.append(instruction)
    return "\n".join(lines)


class Concepts:
    name = "concepts"
    modality: Modality = "vision"
    description = "RAP: the user's concepts recognized in the photo, with one reference image each"
    retrieves = True  # k: how many of the user's concepts are retrieved
    adapter_kind: str | None = None

    def prepare(self, requests: list[AnswerRequest], tools: VisionTools) -> list[VisionPlan]:
        prepared = []
        for request in requests:
            memory = tools.memory(request.user_id)
            # No concepts (only people, say): nothing to embed the photo for.
            candidates = (
                memory.match(tools.query_vector(request.image), k=request.k)
                if memory.concepts
                else []
            )
            by_name = {c.name: c for c in memory.concepts}
            chosen = [m for m in candidates if m.accepted]
            concepts = [by_name[m.name] for m in chosen]
            references = [open_image(c.references[0]) for c in concepts]
            people = tools.people(request.user_id, request.image)
            text = concept_prompt(
                [(m, c.class_word, c.description) for m, c in zip(chosen, concepts, strict=True)],
                request.instruction,
                people.grounding() if people is not None else "",
            )
            named = [p.name for p in people.people] if people is not None else []
            provenance = Provenance(
                subjects=[m.name for m in chosen] + named,
                notes=[
                    f"concept {m.name}: similarity {m.score:.3f}, confidence {m.confidence:.2f}"
                    f" ({'recognized' if m.accepted else 'below threshold'})"
                    for m in candidates
                ]
                + ([f"faces: {people.grounding()}"] if people is not None else []),
            )
            details = {
                "concepts": [
                    {
                        "name": m.name,
                        "score": m.score,
                        "confidence": m.confidence,
                        "accepted": m.accepted,
                        "reference": by_name[m.name].references[0],
                    }
                    for m in candidates
                ],
                "alpha": memory.calibration.alpha,
            }
            if people is not None:
                details["people"] = [asdict(p) for p in people.people]
                details["faces"] = {"found": people.faces, "unnamed": people.unknown}
            chat = vision_chat(SYSTEM, text, *references, request.image)
            prepared.append(VisionPlan(chat, provenance, details))
        return prepared


class ConceptTokens:
    name = "concept-tokens"
    modality: Modality = "vision"
    description = "Yo'LLaVA: the user's learned concept tokens introduce every trained concept"
    retrieves = False
    adapter_kind: str | None = "concept-tokens"

    def prepare(self, requests: list[AnswerRequest], tools: VisionTools) -> list[VisionPlan]:
        import torch

        prepared = []
        for request in requests:
            learned = tools.concept_tokens(request.user_id)
            if not learned:
                raise ValueError(
                    f"user {request.user_id!r} has no trained concept tokens; train them with "
                    f"pgen train-concept --user {request.user_id} --concept NAME"
                )
            lines = [SYSTEM]
            lines += [
                introduction(c.name, c.class_word, tools.placeholder(), len(c.tokens))
                for c in learned
            ]
            chat = vision_chat(" ".join(lines), request.instruction, request.image)
            provenance = Provenance(
                subjects=[c.name for c in learned], artifacts=[c.folder for c in learned]
            )
            soft = torch.cat([c.tokens for c in learned])
            prepared.append(VisionPlan(chat, provenance, {}, soft))
        return prepared
