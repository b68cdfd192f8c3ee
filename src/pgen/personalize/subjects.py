"""The ``subjects`` strategy: two of the user's subjects in one image ("rex and my mug on the
beach"), each by its trained artifact, composed by ``stack`` (every adapter at once: the
naive baseline) or ``regions`` (sequential inpainting, one subject's adapter per band: see
``pgen.models.regions``). The request's ``method`` picks the composition (default
``regions``); the subjects are the ones the instruction names, in its order.
"""

from __future__ import annotations

import re

from pgen.components import ImagePlan, ImageRequest, Modality, Provenance, Tools
from pgen.context.base import ContextStore
from pgen.context.records import Subject
from pgen.errors import InvalidRequest
from pgen.models.base import AdapterRef
from pgen.models.regions import COMPOSE_METHODS, REGIONS, Region, bands
from pgen.personalize.subject import (
    TRAINERS,
    subject_adapter,
    subject_phrase,
    subject_prompt,
    trained,
)

MAX_SUBJECTS = 2  # side-by-side bands narrower than half the image lose the subject
SUBJECTS_ADAPTER = "subjects"  # the AdapterRef kind the image executor composes


def named_subjects(subjects: list[Subject], instruction: str) -> list[Subject]:
    """The user's subjects the instruction names as words, in the order it names them."""
    found = []
    for subject in subjects:
        match = re.search(rf"\b{re.escape(subject.name)}\b", instruction, re.IGNORECASE)
        if match:
            found.append((match.start(), subject))
    return [subject for _, subject in sorted(found, key=lambda pair: pair[0])]


def check_subjects(store: ContextStore, request: ImageRequest) -> list[Subject]:
    """Two subjects named, each with a trained artifact, and a known method; else a
    one-line refusal."""
    if request.method is not None and request.method not in COMPOSE_METHODS:
        raise InvalidRequest(
            f"subjects: method {request.method!r}; choose from {', '.join(COMPOSE_METHODS)}"
        )
    subjects = named_subjects(store.subjects(request.user_id), request.instruction)
    if len(subjects) < 2:
        known = ", ".join(s.name for s in store.subjects(request.user_id)) or "none"
        raise InvalidRequest(
            f"subjects: the instruction names {len(subjects)} of the subjects of user "
            f"{request.user_id!r} ({known}); name two"
        )
    if len(subjects) > MAX_SUBJECTS:
        raise InvalidRequest(
            f"subjects: the instruction names {len(subjects)} subjects "
            f"({', '.join(s.name for s in subjects)}); at most {MAX_SUBJECTS} are supported"
        )
    for subject in subjects:
        if not trained(store, request.user_id, subject):
            raise InvalidRequest(
                f"subject {subject.name!r} of user {request.user_id!r} has no trained artifact; "
                f"run: pgen train-subject --user {request.user_id} --subject {subject.name}"
            )
    return subjects


class SubjectsStrategy:
    name = "subjects"
    modality: Modality = "image"
    description = "two of the user's subjects in one image: adapters stacked, or one per region"
    retrieves = False
    adapter_kind: str | None = "subject"

    def prepare(self, requests: list[ImageRequest], tools: Tools) -> list[ImagePlan]:
        plans = []
        base = tools.image_model.name
        for request in requests:
            subjects = check_subjects(tools.store, request)
            method = request.method or REGIONS
            provenance = Provenance(model=base)
            prompt, regions = request.instruction, []
            for subject, box in zip(subjects, bands(len(subjects)), strict=True):
                have = trained(tools.store, request.user_id, subject)
                kind = next(m for m in TRAINERS if m in have)
                adapter, token, part = subject_adapter(
                    tools.store, request.user_id, subject, kind, base
                )
                phrase = subject_phrase(token, subject)
                prompt = subject_prompt(prompt, subject, phrase)
                regions.append(Region(subject.name, f"a {phrase}", adapter, box))
                provenance.subjects += part.subjects
                provenance.artifacts += part.artifacts
            weights = [1.0 / len(regions)] * len(regions)  # stacked LoRAs share the weight
            settings = {"regions": regions, "weights": weights, "method": method}
            name = f"{request.user_id}/{'+'.join(r.subject for r in regions)}/{method}"
            details = {
                "method": method,
                "regions": [
                    {"subject": r.subject, "prompt": r.prompt, "box": r.box} for r in regions
                ],
                "weights": weights,
            }
            plans.append(
                ImagePlan(
                    prompt, provenance, AdapterRef(SUBJECTS_ADAPTER, name, None, settings), details
                )
            )
        return plans
