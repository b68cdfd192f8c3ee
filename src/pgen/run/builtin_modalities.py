"""The built-in modalities: text, image and vision (answers about the user's photos), each
one ``register_modality`` call with its checks, tools, record and result. Registered on
import, by ``pgen.run.modalities`` once its registry is complete."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pgen.components import (
    AnswerRequest,
    ImagePlan,
    ImageRequest,
    TextPlan,
    TextRequest,
    VisionPlan,
    VisionTools,
    template_tokens,
)
from pgen.config import GenerationSettings
from pgen.errors import InvalidRequest
from pgen.evaluate.metrics.copying import copied
from pgen.models.base import ImageGenerationSettings
from pgen.models.executors import Executed, execute_image, execute_text, execute_vision
from pgen.personalize.stated import prepare_text
from pgen.results import Answer, ImageGeneration
from pgen.run.modalities import (
    Finished,
    ModalitySpec,
    Workbench,
    modality_names,
    register_modality,
)


# -- text -------------------------------------------------------------------------------
def _text_check(bench: Workbench, request: TextRequest) -> TextRequest:
    for message in request.history:
        if message.role not in ("user", "assistant"):
            raise InvalidRequest(
                f"earlier turns are the user's or the assistant's, not {message.role!r}"
            )
    return request


def _text_settings_check(bench: Workbench, settings: GenerationSettings) -> None:
    """A reply length that leaves the prompt no room in the model's context is refused
    (rather than cutting the prompt to nothing)."""
    model = bench.load("text")
    most = model.context_length - template_tokens(model) - 1
    if settings.max_new_tokens > most:
        raise InvalidRequest(
            f"max new tokens {settings.max_new_tokens} leaves no room for the prompt in the "
            f"model's context of {model.context_length} tokens; ask for at most {most}"
        )


# Noted from this share of a reply's 5-word runs found in the user's documents on. In the
# attribution runs (docs/benchmarks.md) replies that copied a post scored 0.41-1.00, the
# others 0.00-0.06.
COPY_NOTE = 0.3


def _text_record(
    bench: Workbench, request: TextRequest, plan: TextPlan, executed: Executed
) -> dict[str, Any]:
    """The provenance, k and details; for a reply built on the user's documents, how much
    of it repeats them (``details["copied"]``), and a note when much of it does. A
    ghostwritten text that hands back one of the user's old posts is not a new one, and
    the caller should know. (The copy guard, ``no_copy_ngram_size``, bans exact token runs
    while decoding; a model can route around it with near copies, which this still sees.)"""
    if plan.provenance.documents:
        used = bench.store.documents(request.user_id, plan.provenance.documents)
        share = copied(executed.text, [document.text for document in used])
        plan.details["copied"] = round(share, 3)
        if share >= COPY_NOTE:
            plan.provenance.notes.append(
                f"the reply repeats {share:.0%} of its 5-word runs from the user's own "
                "documents: it may hand back their old text rather than write a new one"
            )
    return {**plan.provenance.as_dict(), "k": request.k, "details": plan.details}


# -- images -----------------------------------------------------------------------------
def _image_check(bench: Workbench, request: ImageRequest) -> ImageRequest:
    """``subject``, ``face-id``: the user's subject is found (named, or mentioned in the
    instruction) before a pipeline loads."""
    if request.strategy in ("subject", "face-id"):
        from pgen.personalize.subject import pick_subject

        try:
            pick_subject(bench.store, request)
        except ValueError as error:
            raise InvalidRequest(str(error)) from None
    return request


def _image_record(
    bench: Workbench, request: ImageRequest, plan: ImagePlan, executed: Executed
) -> dict[str, Any]:
    return {**plan.provenance.as_dict(), **plan.details, "prompt": plan.prompt}


def _image_result(done: Finished) -> ImageGeneration:
    assert done.output_id is not None  # image outputs are always saved
    details = {**done.plan.details, "images": list(map(str, done.media))}
    return ImageGeneration(
        done.output_id,
        done.request.user_id,
        done.request.strategy,
        done.plan.prompt,
        done.media,
        done.plan.provenance,
        details,
    )


# -- vision: requests that carry a photo --------------------------------------------------
def _vision_check(bench: Workbench, request: AnswerRequest) -> AnswerRequest:
    from pgen.models.image_input import open_image

    if request.k < 1:
        raise InvalidRequest(f"k must be at least 1, got {request.k}")
    photos = bench.load("photos")
    image = open_image(request.image_path, photos.allowed, denied=[bench.store.artifacts_root])
    return replace(request, image=image)


def _vision_tools(bench: Workbench, settings: Any) -> VisionTools:
    from pgen.models.executors import soft_token_model
    from pgen.training.concept_tokens import learned_concepts

    photos = bench.load("photos")

    def soft() -> Any:
        return soft_token_model(bench.load("vision"))

    return VisionTools(
        memory=photos.memory,
        query_vector=photos.query_vector,
        concept_tokens=lambda user_id: learned_concepts(bench.store, user_id, soft().name),
        placeholder=lambda: soft().placeholder,
        people=photos.people_in,
    )


def _vision_record(
    bench: Workbench, request: AnswerRequest, plan: VisionPlan, executed: Executed
) -> dict[str, Any]:
    embedder = bench.load("photos").embedder.model_id
    return {
        **plan.provenance.as_dict(),
        **plan.details,
        "image": request.image_path,
        "embedder": embedder,
    }


def _answer(done: Finished) -> Answer:
    assert done.output_id is not None
    return Answer(done.output_id, done.executed.text, done.request.strategy, done.record)


def register_builtin_modalities() -> None:
    if modality_names():
        return
    register_modality(
        ModalitySpec(
            "text",
            TextRequest,
            "text",
            GenerationSettings,
            execute_text,
            check=_text_check,
            record=_text_record,
            prepare=prepare_text,  # the strategy's plan, earlier turns, stated preferences
            check_settings=_text_settings_check,
        )
    )
    register_modality(
        ModalitySpec(
            "image",
            ImageRequest,
            "image",
            ImageGenerationSettings,
            execute_image,
            tools=lambda bench, sampling: bench.tools(sampling=sampling),
            record=_image_record,
            check=_image_check,
            result=_image_result,
            default_settings=lambda bench: None,
            batch_size=1,
            model_first=True,
        )
    )
    register_modality(
        ModalitySpec(
            "vision",
            AnswerRequest,
            "vision",
            GenerationSettings,
            execute_vision,
            tools=_vision_tools,
            check=_vision_check,
            record=_vision_record,
            result=_answer,
            batch_size=1,
        )
    )


register_builtin_modalities()
