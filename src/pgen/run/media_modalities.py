"""The ``video``, ``post`` and ``3d`` modalities: each one ``register_modality`` call over its
request type (``pgen.components``), its strategies (``pgen.personalize.video`` / ``.post`` /
``.shape``) and its executor (``pgen.models.video`` / ``.post`` / ``.shape``). Checks refuse
bad input before any model loads.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from pgen.components import MAX_FRAMES, PostRequest, ShapeRequest, VideoRequest
from pgen.errors import InvalidRequest
from pgen.models.executors import Executed
from pgen.models.post import PostModels, PostSettings, execute_post
from pgen.models.shape import ShapeSettings, execute_shape
from pgen.models.video import (
    DEFAULT_MOTION_ADAPTER,
    VideoGenerationSettings,
    check_motion_adapter,
    execute_video,
)
from pgen.run.modalities import ModalitySpec, Workbench, register_modality

MOTION_ADAPTER_ENV = "PGEN_MOTION_ADAPTER"  # the default motion adapter (id, folder, file)
MAX_FPS = 60
MAX_SEED = 2**63 - 1


def _refused(error: Exception) -> InvalidRequest:
    return InvalidRequest(str(error))


def _check_seed(seed: int) -> None:
    # torch's generators take 64 bits: a larger seed would fail inside the pipeline.
    if not 0 <= seed <= MAX_SEED:
        raise InvalidRequest(f"seed must be between 0 and {MAX_SEED}, got {seed}")


# -- video --------------------------------------------------------------------------------
def _motion_adapter(offered: tuple[str, ...] | None, named: str | None) -> str:
    """The adapter a request gets: the one it names, when ``offered`` (None: any) has it;
    else the first offered, $PGEN_MOTION_ADAPTER or the default id."""
    if named is not None and offered is not None and named not in offered:
        # Refused by name alone: nothing the client names is opened or loaded.
        offers = f"offers {', '.join(map(repr, offered))}" if offered else "names none"
        raise InvalidRequest(
            f"motion adapter {named!r} is not one this service offers "
            f"(its config video_motion_adapters {offers})"
        )
    default = offered[0] if offered else None
    return named or default or os.environ.get(MOTION_ADAPTER_ENV) or DEFAULT_MOTION_ADAPTER


def _video_check(bench: Workbench, request: VideoRequest) -> VideoRequest:
    if not 1 <= request.frames <= MAX_FRAMES:
        raise InvalidRequest(f"frames must be between 1 and {MAX_FRAMES}, got {request.frames}")
    if not 1 <= request.fps <= MAX_FPS:
        raise InvalidRequest(f"fps must be between 1 and {MAX_FPS}, got {request.fps}")
    _check_seed(request.seed)
    motion = _motion_adapter(bench.motion_adapters, request.motion_adapter)
    # The store's own files (users' artifacts) are never read as a model a request names.
    root = Path(bench.store.artifacts_root).resolve()
    if Path(motion).expanduser().resolve().is_relative_to(root):
        raise InvalidRequest(f"motion adapter {motion!r}: the store's files are not models")
    try:
        check_motion_adapter(motion)
    except (ValueError, FileNotFoundError) as error:
        raise _refused(error) from None
    if request.strategy == "subject":
        _check_trained_subject(bench, request, request.method)
    return replace(request, motion_adapter=motion)


def _check_trained_subject(bench: Workbench, request: Any, method: str | None) -> None:
    """The subject the request names (or mentions) has a trained artifact of ``method``
    (any trained one when None): a clip or a post has no zero-shot fallback here."""
    from pgen.personalize.subject import TRAINERS, pick_subject, trained

    try:
        subject = pick_subject(bench.store, request)
    except ValueError as error:
        raise _refused(error) from None
    if method is not None and method not in TRAINERS:
        raise InvalidRequest(f"video takes a trained subject method ({', '.join(TRAINERS)})")
    have = set(trained(bench.store, request.user_id, subject))
    if not (have & {method} if method else have):
        raise InvalidRequest(
            f"subject {subject.name!r} of user {request.user_id!r} has no {method or 'trained'} "
            f"artifact; run: pgen train-subject --user {request.user_id} --subject {subject.name}"
        )


def _video_record(bench: Workbench, request: Any, plan: Any, executed: Executed) -> dict[str, Any]:
    return {**plan.provenance.as_dict(), **plan.details, "prompt": plan.prompt}


# -- post ---------------------------------------------------------------------------------
def _post_record(bench: Workbench, request: Any, plan: Any, executed: Executed) -> dict[str, Any]:
    # details: both strategies, both parts' details and the image prompt the executor used
    return {**plan.provenance.as_dict(), **plan.details}


def _post_check(bench: Workbench, request: PostRequest) -> PostRequest:
    from pgen.personalize import strategy_names
    from pgen.personalize.post import IMAGE_STRATEGIES

    captions = strategy_names("text")
    if request.caption not in captions:
        raise InvalidRequest(
            f"caption strategy {request.caption!r}: choose from {', '.join(captions)}"
        )
    if request.image not in IMAGE_STRATEGIES:
        raise InvalidRequest(
            f"image strategy {request.image!r}: choose from {', '.join(IMAGE_STRATEGIES)}"
        )
    if request.k < 1:
        raise InvalidRequest(f"k must be at least 1, got {request.k}")
    _check_seed(request.seed)
    bench.retrievers.get(request.retriever)
    if request.image == "subject":
        _check_trained_subject(bench, request, None)
    return request


def _post_models(bench: Workbench) -> PostModels:
    return PostModels(bench.load("text"), bench.load("image"))


# -- 3d -----------------------------------------------------------------------------------
def _shape_check(bench: Workbench, request: ShapeRequest) -> ShapeRequest:
    from pgen.models.image_input import ImageInputError, check_image_path
    from pgen.personalize.subject import pick_subject

    _check_seed(request.seed)
    try:
        subject = pick_subject(bench.store, request)
    except ValueError as error:
        raise _refused(error) from None
    if not subject.image_paths:
        raise InvalidRequest(f"subject {subject.name!r} has no reference image to make 3D from")
    # Every reference is scored, so each must be readable, and from where this user's images
    # may come (the media roots, their uploads): said now, not after a model loads.
    allowed = bench.load("photos").allowed_for(request.user_id)
    try:
        for path in subject.image_paths:
            check_image_path(path, allowed)
    except ImageInputError as error:
        raise InvalidRequest(f"subject {subject.name!r}: {error}") from None
    return request  # the model is checked as it loads, first (model_first)


def _shape_record(bench: Workbench, request: Any, plan: Any, executed: Executed) -> dict[str, Any]:
    mesh = executed.files[0]
    # In the plan's details, so the result shows them as the stored output does.
    plan.details.update(
        {"vertices": len(mesh.vertices), "faces": len(mesh.faces), "views": len(executed.images)}
    )
    return {**plan.provenance.as_dict(), "details": plan.details}


def register_media_modalities() -> None:
    register_modality(
        ModalitySpec(
            "video",
            VideoRequest,
            "image",  # the video model is the image model plus a motion adapter
            VideoGenerationSettings,
            execute_video,
            tools=lambda bench, settings: bench.tools(),
            check=_video_check,
            record=_video_record,
            default_settings=lambda bench: VideoGenerationSettings(),
            batch_size=1,
            model_first=True,
        )
    )
    register_modality(
        ModalitySpec(
            "post",
            PostRequest,
            "image",
            PostSettings,
            execute_post,
            tools=lambda bench, settings: bench.tools(),
            check=_post_check,
            record=_post_record,
            default_settings=lambda bench: PostSettings(bench.generation),
            batch_size=1,
            model=_post_models,
        )
    )
    register_modality(
        ModalitySpec(
            "3d",
            ShapeRequest,
            "shape",
            ShapeSettings,
            execute_shape,
            tools=lambda bench, settings: bench.tools(),
            check=_shape_check,
            record=_shape_record,
            default_settings=lambda bench: None,  # the model's own (its config settings)
            batch_size=1,
            model_first=True,  # no 3D weights install offline: say so before anything runs
        )
    )


register_media_modalities()
